import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { CALLS, type CallDoc, ROUNDS, type RoundDoc } from "@taituri/generation-service/store";
import { createKafka, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import type { RunningService } from "@taituri/service";
import { eventually, runId } from "@taituri/testing/harness";
import { type FakeOpenAI, startFakeOpenAI } from "@taituri/testing/openai";
import type { Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";
import { RoundsProbe, roundRequest, spawnGeneration, startTestLimiter } from "./support/generation.ts";

/**
 * SIGTERM while a paid image call is in flight (a rollout), on the real servers with the real
 * limiter and a local server speaking the OpenAI images API: within its drain deadline the call
 * finishes and the round completes once; past it, the call is cancelled, the lease released, and
 * another instance completes the round with the documented two paid calls (docs/generation.md).
 */
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const run = runId();
const dbName = `it_generation_shutdown_${run}`;
const SECRET = "generation-secret";
let infra: Infra;
let issuer: LocalIssuer;
let limiterService: RunningService;
let kafka: Kafka;
let mongo: MongoClient;
let db: Db;
let fake: FakeOpenAI;
const probes: RoundsProbe[] = [];
const children: ChildProcess[] = [];

const callsOf = (roundId: string) => db.collection<CallDoc>(CALLS).find({ roundId }).toArray();
const roundOf = (roundId: string) => db.collection<RoundDoc>(ROUNDS).findOne({ _id: roundId });

/** A generation process for `prefix`, calling the fake with a timeout far above the test's waits. */
async function spawnFor(prefix: string, env: Record<string, string> = {}) {
  const full: NodeJS.ProcessEnv = {
    ...process.env,
    ...infra.kafka.settings("generation"),
    MONGO_URL: infra.mongo.url,
    MONGO_DB: dbName,
    KAFKA_PARTITIONS: "3",
    KAFKA_TOPIC_PREFIX: prefix,
    GENERATION_PORT: "0",
    LIMITER_URL: limiterService.endpoints.grpc ?? "",
    OIDC_ISSUER_URL: issuer.url,
    OIDC_CLIENT_SECRET: SECRET,
    IMAGE_PROVIDER: "openai",
    OPENAI_API_KEY: "sk-shutdown",
    OPENAI_BASE_URL: fake.baseURL,
    OPENAI_TIMEOUT_MS: "60000",
    GENERATION_LEASE_MS: "65000",
    GENERATION_MAX_ATTEMPTS: "2",
    LOG_LEVEL: "info",
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    ...env,
  };
  // The run's master secret is for startInfra(), not for a service.
  delete full.TAITURI_KAFKA_AUTH;
  // Its topics exist once its consumer has started.
  const child = await spawnGeneration(full, /generation consumer started/);
  children.push(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, logged: (text: string) => output.includes(text) };
}

async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, "exit")) as [number | null];
  return code;
}

before(async () => {
  infra = await startInfra();
  issuer = await startLocalIssuer({ clients: { generation: SECRET } });
  limiterService = await startTestLimiter({
    redisUrl: infra.redis.url,
    issuerUrl: issuer.url,
    keyPrefix: `genstop-${run}`,
    logger,
  });
  kafka = createKafka({ ...infra.kafka.client, clientId: "generation-shutdown-it", logger });
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(dbName);
  fake = await startFakeOpenAI();
});

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const probe of probes) await probe.stop();
  await fake?.close();
  await limiterService?.stop();
  await issuer?.close();
  await mongo?.close();
  await infra?.stop();
});

describe("generation shutdown with a paid call in flight", { timeout: 5 * 60_000 }, () => {
  test("SIGTERM mid-call: the call finishes, the round completes once, one paid call", async () => {
    const prefix = `genstop-${run}-finish.`;
    await infra.kafka.authorize(prefix);
    fake.script("held");
    const requestsBefore = fake.requests.length;
    const { child, logged } = await spawnFor(prefix);
    const probe = new RoundsProbe(kafka, topicNames(prefix));
    probes.push(probe);
    await probe.start();
    const request = roundRequest(run);
    await probe.deliver(request);
    await eventually(
      "the provider call in flight",
      () => fake.requests.length === requestsBefore + 1,
      30_000,
    );

    child.kill("SIGTERM");
    await eventually("the service waits for the round in hand", () =>
      logged("waiting for the rounds in hand before stopping"),
    );
    assert.equal(child.exitCode, null, "still draining while the call is unanswered");
    fake.releaseHeld();
    assert.equal(await exitOf(child), 0);

    const [result] = await eventually(
      "the round's result",
      () => probe.resultsOf(request.roundId).length > 0 && probe.resultsOf(request.roundId),
      30_000,
    );
    assert.equal(result?.outcome?.$case, "completed");
    assert.equal(probe.resultsOf(request.roundId).length, 1);
    assert.equal(fake.requests.length, requestsBefore + 1);
    assert.deepEqual(
      (await callsOf(request.roundId)).map((c) => [c.attempt, c.outcome, c.paid]),
      [[1, "ok", true]],
    );
    const round = await roundOf(request.roundId);
    assert.equal(round?.attempts, 1);
    assert.equal(round?.published, true);
  });

  test("SIGTERM with a drain deadline shorter than the call: cancelled, lease released, a second instance completes it (2 paid calls)", async () => {
    const prefix = `genstop-${run}-handback.`;
    await infra.kafka.authorize(prefix);
    fake.script("hang");
    const requestsBefore = fake.requests.length;
    const first = await spawnFor(prefix, { GENERATION_DRAIN_MS: "500" });
    const probe = new RoundsProbe(kafka, topicNames(prefix));
    probes.push(probe);
    await probe.start();
    const request = roundRequest(run);
    await probe.deliver(request);
    await eventually(
      "the provider call in flight",
      () => fake.requests.length === requestsBefore + 1,
      30_000,
    );

    first.child.kill("SIGTERM");
    assert.equal(await exitOf(first.child), 0);
    assert.ok(first.logged("drain deadline passed"));
    assert.deepEqual(
      (await callsOf(request.roundId)).map((c) => [c.attempt, c.outcome, c.paid]),
      [[1, "cancelled", true]],
      "the cancelled call is in the ledger, counted as paid",
    );
    const released = await roundOf(request.roundId);
    assert.equal(released?.state, "in_progress");
    assert.equal(released?.attempts, 1);
    assert.ok(
      (released?.leaseUntil.getTime() ?? Number.POSITIVE_INFINITY) <= Date.now(),
      "the lease was released, so the take-over need not wait for it",
    );
    assert.equal(probe.resultsOf(request.roundId).length, 0);

    const second = await spawnFor(prefix);
    const [result] = await eventually(
      "the round completed by the second instance",
      () => probe.resultsOf(request.roundId).length > 0 && probe.resultsOf(request.roundId),
      60_000,
    );
    assert.equal(result?.outcome?.$case, "completed");
    assert.equal(fake.requests.length, requestsBefore + 2, "the cancelled call and the take-over's");
    const ledger = await callsOf(request.roundId);
    assert.deepEqual(
      ledger.map((c) => [c.attempt, c.outcome, c.paid]),
      [
        [1, "cancelled", true],
        [2, "ok", true],
      ],
    );
    assert.equal((await roundOf(request.roundId))?.attempts, 2);
    second.child.kill("SIGTERM");
    assert.equal(await exitOf(second.child), 0);
    assert.equal(probe.resultsOf(request.roundId).length, 1);
  });
});

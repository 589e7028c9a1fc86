import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import { loadGenerationConfig } from "@taituri/generation-service/config";
import { startGenerationService } from "@taituri/generation-service/service";
import { CALLS, type CallDoc, ROUNDS, type RoundDoc } from "@taituri/generation-service/store";
import { createKafka, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import type { RunningService } from "@taituri/service";
import { eventually, runId } from "@taituri/testing/harness";
import { type FakeOpenAI, startFakeOpenAI } from "@taituri/testing/openai";
import type { Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";
import {
  countingLocalProvider,
  RoundsProbe,
  roundRequest,
  spawnGeneration,
  startTestLimiter,
} from "./support/generation.ts";

/**
 * The generation service on the real servers (Kafka, MongoDB-wire, Redis) with the real limiter
 * over gRPC and a real local OIDC issuer: duplicates, refusals, outages and a crash mid-round.
 * Provider calls are counted by a wrapper around the local renderer, by the cost ledger, and (for
 * the crash) by a local server speaking the OpenAI images API.
 */
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const run = runId();
const dbName = `it_generation_${run}`;
const SECRET = "generation-secret";
let infra: Infra;
let issuer: LocalIssuer;
let limiterService: RunningService;
let kafka: Kafka;
let mongo: MongoClient;
let db: Db;
const services: RunningService[] = [];
const probes: RoundsProbe[] = [];
const providerCalls: { roundId: string }[] = [];

/** The service's settings, but its topic prefix: authorize the prefix (infra.kafka.authorize) first. */
const baseEnv = () => ({
  ...infra.kafka.settings("generation"),
  MONGO_URL: infra.mongo.url,
  MONGO_DB: dbName,
  KAFKA_PARTITIONS: "6",
  GENERATION_PORT: "0",
  LIMITER_URL: limiterService.endpoints.grpc ?? "",
  OIDC_ISSUER_URL: issuer.url,
  OIDC_CLIENT_SECRET: SECRET,
  CONSUMER_CONCURRENCY: "6",
});

async function startGeneration(prefix: string, env: Record<string, string> = {}, instances = 1) {
  await infra.kafka.authorize(prefix);
  for (let i = 0; i < instances; i++) {
    services.push(
      await startGenerationService(
        loadGenerationConfig({ ...baseEnv(), KAFKA_TOPIC_PREFIX: prefix, ...env }),
        logger,
        {
          provider: countingLocalProvider({ size: 128, delayMs: 150 }, (roundId) =>
            providerCalls.push({ roundId }),
          ),
        },
      ),
    );
  }
  const probe = new RoundsProbe(kafka, topicNames(prefix));
  await probe.start();
  probes.push(probe);
  return probe;
}

const callsOf = (roundId: string) => db.collection<CallDoc>(CALLS).find({ roundId }).toArray();
const roundOf = (roundId: string) => db.collection<RoundDoc>(ROUNDS).findOne({ _id: roundId });
/** A counter summed over every in-process generation service, e.g. metric("generation_rounds_total", 'outcome="duplicate"'). */
const metric = async (name: string, label: string) => {
  let total = 0;
  for (const service of services) {
    const text = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
    for (const line of text.split("\n"))
      if (line.startsWith(`${name}{`) && line.includes(label)) total += Number(line.split(" ").at(-1));
  }
  return total;
};
const duplicates = () => metric("generation_rounds_total", 'outcome="duplicate"');

let main: RoundsProbe;

before(async () => {
  infra = await startInfra();
  issuer = await startLocalIssuer({ clients: { generation: SECRET } });
  limiterService = await startTestLimiter({
    redisUrl: infra.redis.url,
    issuerUrl: issuer.url,
    keyPrefix: `gen-${run}`,
    logger,
  });
  kafka = createKafka({ ...infra.kafka.client, clientId: "generation-it", logger });
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(dbName);
  // Two replicas in one consumer group, as in production.
  main = await startGeneration(`gen-${run}.`, {}, 2);
});

after(async () => {
  for (const probe of probes) await probe.stop();
  for (const service of services) await service.stop();
  await limiterService?.stop();
  await issuer?.close();
  await mongo?.close();
  await infra?.stop();
});

describe("generation on the real servers", { timeout: 5 * 60_000 }, () => {
  test("one request delivered 5 times, one after another: one provider call, one completed event, real PNGs", async () => {
    const request = roundRequest(run);
    const duplicatesBefore = await duplicates();
    await main.deliver(request, 5);
    await eventually("4 duplicates handled", async () => (await duplicates()) - duplicatesBefore >= 4);
    const results = main.resultsOf(request.roundId);
    assert.equal(results.length, 1);
    const outcome = results[0]?.outcome;
    assert.equal(outcome?.$case, "completed");
    assert.ok(outcome?.$case === "completed");
    assert.equal(outcome.value.designs.length, 3);
    assert.equal(providerCalls.filter((c) => c.roundId === request.roundId).length, 1);
    const ledger = await callsOf(request.roundId);
    assert.deepEqual(
      ledger.map((c) => [c.outcome, c.provider, c.paid, c.images, c.estimatedCents]),
      [["ok", "local", true, 3, 0]],
    );
    assert.ok((ledger[0]?.latencyMs ?? -1) >= 0);
    const images = new ImageStore(db);
    const stored = await Promise.all(outcome.value.designs.map((d) => images.get(d.imageId)));
    for (const image of stored) {
      assert.equal(image?.contentType, "image/png");
      assert.deepEqual([...(image?.bytes.subarray(1, 4) ?? [])], [0x50, 0x4e, 0x47]);
    }
    assert.equal(new Set(stored.map((i) => i?.bytes.toString("base64"))).size, 3, "three distinct designs");
    assert.equal((await roundOf(request.roundId))?.published, true);
  });

  test("one request delivered 5 times at once, over partitions and two replicas: one provider call, one completed event", async () => {
    const request = roundRequest(run);
    const before = await duplicates();
    await main.deliver(request, 5, true);
    await eventually("every delivery handled", async () => (await duplicates()) - before >= 4, 60_000);
    assert.equal(main.resultsOf(request.roundId).length, 1);
    assert.equal(main.resultsOf(request.roundId)[0]?.outcome?.$case, "completed");
    assert.equal(providerCalls.filter((c) => c.roundId === request.roundId).length, 1);
    assert.equal((await callsOf(request.roundId)).length, 1);
    assert.equal((await roundOf(request.roundId))?.attempts, 1);
  });

  test("the limiter refuses the shopper's second round: a rejected event with retry-after, no provider call", async () => {
    const first = roundRequest(run);
    await main.deliver(first);
    await eventually("first round completed", () => main.resultsOf(first.roundId).length === 1);
    const second = roundRequest(run, { shopperId: first.shopperId });
    await main.deliver(second);
    const [result] = await eventually(
      "second round answered",
      () => main.resultsOf(second.roundId).length === 1 && main.resultsOf(second.roundId),
    );
    assert.equal(result?.outcome?.$case, "rejected");
    assert.ok(result?.outcome?.$case === "rejected" && result.outcome.value.retryAfterMs > 60_000);
    assert.equal(providerCalls.filter((c) => c.roundId === second.roundId).length, 0);
    assert.deepEqual(await callsOf(second.roundId), []);
    assert.equal((await roundOf(second.roundId))?.state, "rejected");
  });

  test("the limiter unreachable: a failed event the shopper can act on, no provider call", async () => {
    const probe = await startGeneration(`gen-${run}-nolimiter.`, {
      LIMITER_URL: `127.0.0.1:${await freePort()}`,
      LIMITER_TIMEOUT_MS: "500",
    });
    const request = roundRequest(run);
    await probe.deliver(request);
    const [result] = await eventually(
      "round answered",
      () => probe.resultsOf(request.roundId).length === 1 && probe.resultsOf(request.roundId),
      30_000,
    );
    assert.equal(result?.outcome?.$case, "failed");
    assert.match(
      result?.outcome?.$case === "failed" ? result.outcome.value.reason : "",
      /^limiter_unavailable: .*try again/,
    );
    assert.equal(providerCalls.filter((c) => c.roundId === request.roundId).length, 0);
    assert.deepEqual(await callsOf(request.roundId), []);
  });

  test("a failure before any paid call gives the limiter's budget back (Refund)", async () => {
    const fake = await startFakeOpenAI();
    try {
      fake.fallback = "content_policy";
      const probe = await startGenerationWithOpenAI(`gen-${run}-refund.`, fake);
      const request = roundRequest(run);
      await probe.deliver(request);
      const [result] = await eventually(
        "round answered",
        () => probe.resultsOf(request.roundId).length === 1 && probe.resultsOf(request.roundId),
        30_000,
      );
      assert.match(
        result?.outcome?.$case === "failed" ? result.outcome.value.reason : "",
        /^content_policy: /,
      );
      assert.deepEqual(
        (await callsOf(request.roundId)).map((c) => [c.outcome, c.paid, c.estimatedCents]),
        [["content_policy", false, 0]],
      );
      // Refunded, so the same shopper (one round a day) is admitted again.
      fake.fallback = "ok";
      const again = roundRequest(run, { shopperId: request.shopperId });
      await probe.deliver(again);
      const [next] = await eventually(
        "next round answered",
        () => probe.resultsOf(again.roundId).length === 1 && probe.resultsOf(again.roundId),
        30_000,
      );
      assert.equal(next?.outcome?.$case, "completed");
    } finally {
      await fake.close();
    }
  });

  test("killed mid-round and restarted: the round completes with at most GENERATION_MAX_ATTEMPTS (2) paid calls", async () => {
    const fake = await startFakeOpenAI();
    const prefix = `gen-${run}-crash.`;
    const probe = new RoundsProbe(kafka, topicNames(prefix));
    probes.push(probe);
    await infra.kafka.authorize(prefix);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...baseEnv(),
      KAFKA_TOPIC_PREFIX: prefix,
      IMAGE_PROVIDER: "openai",
      OPENAI_API_KEY: "sk-crash",
      OPENAI_BASE_URL: fake.baseURL,
      OPENAI_TIMEOUT_MS: "3000",
      GENERATION_LEASE_MS: "8000",
      GENERATION_MAX_ATTEMPTS: "2",
      LOG_LEVEL: "info",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
    };
    // The run's master secret is for startInfra(), not for a service.
    delete env.TAITURI_KAFKA_AUTH;
    let child: ChildProcess | undefined;
    try {
      fake.script("hang");
      child = await spawnGeneration(env);
      // The service created the prefix's topics at start-up.
      await probe.start();
      const request = roundRequest(run);
      await probe.deliver(request);
      await eventually("the provider call in flight", () => fake.requests.length === 1, 30_000);
      child.kill("SIGKILL");
      await new Promise((resolve) => child?.once("exit", resolve));
      assert.deepEqual(
        (await callsOf(request.roundId)).map((c) => [c.attempt, c.outcome, c.paid]),
        [[1, "pending", true]],
      );
      child = await spawnGeneration(env);
      const [result] = await eventually(
        "the round completed after the restart",
        () => probe.resultsOf(request.roundId).length > 0 && probe.resultsOf(request.roundId),
        60_000,
      );
      assert.equal(result?.outcome?.$case, "completed");
      assert.equal(fake.requests.length, 2, "one call lost with the crash, one after the take-over");
      const ledger = await callsOf(request.roundId);
      assert.deepEqual(
        ledger.map((c) => [c.attempt, c.outcome]),
        [
          [1, "pending"],
          [2, "ok"],
        ],
      );
      assert.ok(ledger.filter((c) => c.paid).length <= 2);
      assert.equal((await roundOf(request.roundId))?.attempts, 2);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(probe.resultsOf(request.roundId).length, 1);
    } finally {
      child?.kill("SIGTERM");
      if (child && child.exitCode === null) await new Promise((resolve) => child?.once("exit", resolve));
      await fake.close();
    }
  });
});

async function startGenerationWithOpenAI(prefix: string, fake: FakeOpenAI): Promise<RoundsProbe> {
  await infra.kafka.authorize(prefix);
  services.push(
    await startGenerationService(
      loadGenerationConfig({
        ...baseEnv(),
        KAFKA_TOPIC_PREFIX: prefix,
        IMAGE_PROVIDER: "openai",
        OPENAI_API_KEY: "sk-it",
        OPENAI_BASE_URL: fake.baseURL,
        OPENAI_TIMEOUT_MS: "5000",
        GENERATION_LEASE_MS: "20000",
      }),
      logger,
    ),
  );
  const probe = new RoundsProbe(kafka, topicNames(prefix));
  await probe.start();
  probes.push(probe);
  return probe;
}

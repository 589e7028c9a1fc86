import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomInt, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import {
  connectKafka,
  encodeRecord,
  type KafkaHandle,
  PermanentError,
  Records,
  startConsumer,
  topicNames,
  topicSpecs,
} from "@taituri/kafka";
import { REPLAYED_FROM_HEADER, replayMarkerTopic } from "@taituri/kafka/dlq";
import { configurePseudonyms, createLogger, pseudonym } from "@taituri/logging";
import { outbound } from "@taituri/proto/events";
import type { RunningService } from "@taituri/service";
import { eventually, type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";

/**
 * `npm run dlq` on the real broker, as its super user: an outbound message is dead-lettered by the
 * real consumer path (the dispatcher's group, with a handler that throws PermanentError, as a bug
 * would), listed and shown without the shopper's number, replayed onto the outbound topic, where the
 * real ingress dispatcher sends it to the Graph API once; the same record delivered a second time
 * is dropped by the dispatcher's claim; a second replay sends nothing.
 */
const run = runId();
const prefix = `it-dlq-${run}.`;
const names = topicNames(prefix);
const dlq = `${names.outbound}.dlq`;
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const shopper = `4479${String(randomInt(1e7, 1e8))}`;
const conversationId = `PNDLQ:${shopper}`;
const messageId = `wamid.dlq-${run}:0`;
const root = new URL("../../", import.meta.url).pathname;

let infra: Infra;
let kafka: KafkaHandle;
let graph: FakeGraphApi;
let ingress: RunningService | undefined;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** scripts/dlq.ts as an operator runs it, with `env` on top of the servers' settings. */
function dlqCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["scripts/dlq.ts", ...args], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? "",
        ...infra.env(),
        KAFKA_TOPIC_PREFIX: prefix,
        ...env,
      },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function json<T>(args: string[], env?: Record<string, string>): Promise<T> {
  const result = await dlqCli([...args, "--json"], env);
  assert.equal(result.code, 0, `dlq ${args.join(" ")}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** The outbound topic's end offsets, summed: what has ever been written to it. */
async function outboundEnd(): Promise<number> {
  const offsets = await kafka.admin.fetchTopicOffsets(names.outbound);
  return offsets.reduce((sum, p) => sum + Number(p.high), 0);
}

const sendsToShopper = () => graph.sends().filter((s) => JSON.stringify(s.body).includes(`dlq ${run}`));

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  // The pseudonyms the CLI prints are under the services' key: the development one here.
  configurePseudonyms("taituri-dev-pseudonym-key");
  kafka = await connectKafka({
    ...infra.kafka.client,
    clientId: `it-dlq-${run}`,
    logger,
    topics: topicSpecs(names, 3),
  });
  await infra.kafka.authorize(prefix);
});

after(async () => {
  await ingress?.stop();
  await kafka?.close();
  await graph?.close();
  await infra?.stop();
});

describe("npm run dlq", { timeout: 180_000 }, () => {
  test("a dead letter is listed, shown, replayed once onto its topic and consumed once", async () => {
    // Dead-lettered by the dispatcher's own group, before the dispatcher runs: the group's committed
    // offset then lies past the record, so the record reaches the dispatcher only as a replay.
    const broken = await startConsumer({
      kafka: kafka.kafka,
      groupId: `${prefix}ingress-dispatcher`,
      topics: [names.outbound],
      producer: kafka.producer,
      logger,
      handle: async () => {
        throw new PermanentError(`renderer bug for ${shopper}`);
      },
    });
    const record = encodeRecord(
      Records.outboundMessage,
      outbound.OutboundMessage.fromPartial({
        id: messageId,
        conversationId,
        phoneNumberId: "PNDLQ",
        to: shopper,
        lastInboundAt: new Date(),
        content: { $case: "text", value: { body: `dlq ${run}: your designs are ready` } },
      }),
    );
    await kafka.producer.send(names.outbound, [{ key: conversationId, ...record }]);
    const listed = await eventually("the dead letter", async () => {
      const [topic] = await json<{ count: number; deadLetters: Record<string, string>[] }[]>([
        "list",
        "--topic",
        "outbound",
      ]);
      return topic && topic.count === 1 ? topic : undefined;
    });
    await broken.stop();

    const [letter] = listed.deadLetters;
    assert.ok(letter);
    assert.equal(letter.dlqTopic, dlq);
    assert.match(letter.source ?? "", new RegExp(`^${names.outbound.replaceAll(".", "\\.")} \\d:\\d+$`));
    assert.match(letter.error ?? "", /PermanentError: renderer bug for p[0-9a-f]{16}/);
    assert.equal(letter.key, `PNDLQ:${pseudonym(shopper)}`);
    // Neither list nor show prints the shopper's number, as text or as JSON.
    const text = await dlqCli(["list"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`${dlq.replaceAll(".", "\\.")}: 1, oldest`));
    assert.doesNotMatch(text.stdout + JSON.stringify(listed), new RegExp(shopper));

    const shown = await json<{
      headers: Record<string, string>;
      value: { messageType: string; value: unknown };
    }>(["show", dlq, letter.position ?? ""]);
    assert.equal(shown.value.messageType, "outbound.v1.OutboundMessage");
    assert.match(JSON.stringify(shown.value.value), /your designs are ready/);
    assert.equal(shown.headers["dlq-source-topic"], names.outbound);
    assert.doesNotMatch(JSON.stringify(shown), new RegExp(shopper));
    const missing = await dlqCli(["show", dlq, "0:999999"]);
    assert.equal(missing.code, 4, missing.stderr);

    // A dry run sends nothing and marks nothing: the replay after it still finds the dead letter to send.
    const before = await outboundEnd();
    const dry = await json<{ replayed: { id: string }[] }>(["replay", "--topic", "outbound", "--dry-run"]);
    assert.deepEqual(
      dry.replayed.map((r) => r.id),
      [`${dlq}:${letter.position}`],
    );
    assert.equal(await outboundEnd(), before);

    ingress = await startIngressService(
      loadIngressConfig({
        MONGO_URL: infra.mongo.url,
        MONGO_DB: prefix.replace(/[.-]/g, "_"),
        REDIS_URL: infra.redis.url,
        KAFKA_TOPIC_PREFIX: prefix,
        KAFKA_PARTITIONS: "3",
        ...infra.kafka.settings("ingress"),
        INGRESS_PORT: "0",
        INGRESS_OPS_PORT: "0",
        WHATSAPP_APP_SECRET: "dlq-secret",
        WHATSAPP_VERIFY_TOKEN: "v",
        WHATSAPP_ACCESS_TOKEN: "t",
        WHATSAPP_API_URL: graph.url,
      }),
      logger,
    );
    const replayed = await json<{ replayed: { id: string; to: string }[]; alreadyReplayed: unknown[] }>([
      "replay",
      "--since",
      "1h",
    ]);
    assert.deepEqual(replayed.replayed, [
      { id: `${dlq}:${letter.position}`, to: names.outbound, key: `PNDLQ:${pseudonym(shopper)}` },
    ]);
    assert.equal(await outboundEnd(), before + 1);
    const [sent] = await eventually("the replayed message at the Graph API", () => {
      const sends = sendsToShopper();
      return sends.length > 0 ? sends : undefined;
    });
    assert.ok(sent);
    assert.equal((sent.body as { to?: string }).to, shopper);

    // The same record once more, as a replay interrupted before its marker would leave it: once the
    // dispatcher's group has committed past it, the Graph API still has one send.
    const copy = await replayedRecord();
    await kafka.producer.send(names.outbound, [copy]);
    await eventually("the dispatcher past the second delivery", async () => {
      const [offsets] = await kafka.admin.fetchOffsets({
        groupId: `${prefix}ingress-dispatcher`,
        topics: [names.outbound],
      });
      const ends = await kafka.admin.fetchTopicOffsets(names.outbound);
      // A partition nothing was ever written to has no committed offset ("-1").
      return ends.every(
        (end) =>
          end.high === "0" ||
          offsets?.partitions.find((p) => p.partition === end.partition)?.offset === end.high,
      );
    });
    assert.equal(sendsToShopper().length, 1);

    // A webhook body ingress could not read, kept as ingress keeps it: never sent to the inbound topic.
    await kafka.producer.send(`${names.inbound}.dlq`, [
      {
        key: "",
        value: Buffer.from(JSON.stringify({ entry: [{ id: shopper }] })),
        headers: { "content-type": "application/json", "dlq-reason": "unreadable webhook" },
      },
    ]);
    const inboundEnd = async () =>
      (await kafka.admin.fetchTopicOffsets(names.inbound)).reduce((sum, p) => sum + Number(p.high), 0);
    const inboundBefore = await inboundEnd();

    // A second replay sends nothing, and says so.
    const end = await outboundEnd();
    const again = await dlqCli(["replay"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Replayed: 0$/m);
    assert.match(again.stdout, /^Already replayed, not sent again: 1$/m);
    assert.match(again.stdout, /^Not replayable, left where they are: 1$/m);
    assert.match(again.stdout, /no dlq-source-topic header\): unreadable webhook/);
    assert.doesNotMatch(again.stdout, new RegExp(shopper));
    assert.equal(await outboundEnd(), end);
    assert.equal(await inboundEnd(), inboundBefore);
  });

  test("the operator's own SASL settings work as TAITURI_KAFKA_AUTH does; a service's login is refused", async () => {
    const sasl = infra.kafka.client.sasl;
    if (!infra.kafka.secured || sasl?.mechanism !== "plain") {
      assert.fail("this test needs the secured broker of startInfra (TAITURI_KAFKA_AUTH)");
    }
    const operator = await dlqCli(["list", "--topic", "outbound"], {
      TAITURI_KAFKA_AUTH: "",
      KAFKA_SASL_MECHANISM: "plain",
      KAFKA_SASL_USERNAME: sasl.username,
      KAFKA_SASL_PASSWORD: sasl.password,
    });
    assert.equal(operator.code, 0, operator.stderr);
    assert.match(operator.stdout, new RegExp(`^${dlq.replaceAll(".", "\\.")}: 1, `, "m"));

    const service = await dlqCli(["list", "--topic", "outbound"], {
      TAITURI_KAFKA_AUTH: "",
      ...infra.kafka.settings("conversation"),
    });
    assert.equal(service.code, 3, `${service.stdout}${service.stderr}`);
    assert.match(service.stderr, /Kafka refused or could not be reached/);

    const usage = await dlqCli(["replay", "--since", "last tuesday"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--since/);
  });
});

/** The replayed record as it lies on the outbound topic (its marker header says which dead letter). */
async function replayedRecord() {
  const found: { key: string; value: Buffer; headers: Record<string, string> }[] = [];
  const reader = kafka.kafka.consumer({
    groupId: `${prefix}it-reader-${randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  await reader.connect();
  await reader.subscribe({ topic: names.outbound, fromBeginning: true });
  const done = new Promise<void>((resolve) => {
    reader.run({
      eachMessage: async ({ message }) => {
        const headers = Object.fromEntries(
          Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
        );
        if (headers[REPLAYED_FROM_HEADER]) {
          found.push({
            key: message.key?.toString() ?? "",
            value: message.value ?? Buffer.alloc(0),
            headers,
          });
          resolve();
        }
      },
    });
  });
  await done;
  await reader.disconnect();
  const [record] = found;
  assert.ok(record);
  assert.equal(record.key, conversationId);
  assert.equal(record.headers[REPLAYED_FROM_HEADER]?.startsWith(dlq), true);
  assert.equal(
    Object.keys(record.headers).filter((h) => h.startsWith("dlq-") && h !== REPLAYED_FROM_HEADER).length,
    0,
  );
  // The marker topic holds it too.
  assert.ok((await kafka.admin.listTopics()).includes(replayMarkerTopic(prefix)));
  return record;
}

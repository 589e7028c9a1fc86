import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { createKafka, ensureTopics } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { runId } from "@taituri/testing/harness";
import { Kafka, type LogEntry, logLevel } from "kafkajs";

/**
 * On a real broker: kafkajs's Connection still logs a refused request as packages/kafka's levelOf
 * expects (it reads that line's shape), services racing to create topics log no error, and a
 * topic Kafka will not create is still an error that names it.
 */
const run = runId();
const topic = `it-${run}.log-levels.v1`;
let infra: Infra;

before(async () => {
  infra = await startInfra();
});

after(async () => {
  const kafka = new Kafka({ ...infra.kafka.client, clientId: "it-cleanup", logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin.disconnect();
  await infra?.stop();
});

function capture() {
  const lines: { level: string; msg: string; namespace?: string; error?: string }[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { lines, logger: createLogger({ service: "it", level: "debug", destination }) };
}

describe("kafkajs log levels on a real broker", { timeout: 60_000 }, () => {
  test("a topic another client created first: kafkajs's error line is as levelOf reads it", async () => {
    const seen: LogEntry[] = [];
    const kafka = new Kafka({
      ...infra.kafka.client,
      clientId: "it-log-levels",
      logCreator: () => (entry) => seen.push(entry),
    });
    const admin = kafka.admin();
    await admin.connect();
    try {
      assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), true);
      // What the loser of two services' race gets: kafkajs resolves false, and has logged an error.
      assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), false);
    } finally {
      await admin.disconnect();
    }
    const refused = seen.find((entry) => entry.level === logLevel.ERROR);
    assert.ok(refused, "kafkajs no longer logs a refused CreateTopics: levelOf's rule for it is moot");
    assert.equal(refused.namespace, "Connection");
    assert.match(refused.log.message, /^Response CreateTopics\(key: 19, version: \d+\)$/);
    assert.equal(refused.log.error, "Topic creation errors");
  });

  test("through createKafka the same race writes nothing above info, and ensureTopics succeeds", async () => {
    const { lines, logger } = capture();
    const kafka = createKafka({ ...infra.kafka.client, clientId: "it-log-levels", logger });
    const admin = kafka.admin();
    await admin.connect();
    try {
      // As a service that listed the topics just before another created them.
      assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), false);
      assert.deepEqual(await ensureTopics(admin, [{ name: topic, partitions: 1 }]), []);
    } finally {
      await admin.disconnect();
    }
    const refused = lines.find((line) => line.error === "Topic creation errors");
    assert.equal(refused?.level, "debug");
    assert.equal(refused?.namespace, "Connection");
    assert.deepEqual(
      lines.filter((line) => line.level === "warn" || line.level === "error"),
      [],
    );
  });

  test("a topic Kafka refuses to create fails ensureTopics, naming the topic and the reason", async () => {
    const { logger } = capture();
    const kafka = createKafka({ ...infra.kafka.client, clientId: "it-log-levels", logger });
    const admin = kafka.admin();
    await admin.connect();
    const bad = `it-${run}.bad-config.v1`;
    try {
      await assert.rejects(
        ensureTopics(admin, [{ name: bad, partitions: 1, configs: { "retention.ms": "a week" } }]),
        (error: Error) => error.message.includes(bad) && /refused to create topics/.test(error.message),
      );
    } finally {
      await admin.disconnect();
    }
  });
});

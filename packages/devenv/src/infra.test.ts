// Needs real servers: if they cannot be provisioned or started, this file FAILS (it never skips),
// because every integration test downstream depends on exactly this working.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, type TestContext, test } from "node:test";
import { baseSchema, loadConfig } from "@taituri/config";
import { createKafka, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import { MongoClient, MongoServerError } from "mongodb";
import { startInfra } from "./infra.ts";
import type { Infra } from "./types.ts";

const suffix = randomBytes(4).toString("hex");

describe("startInfra (real servers)", { timeout: 20 * 60_000 }, () => {
  let infra: Infra | undefined;

  before(
    async () => {
      // Cold provisioning (Maven download, FerretDB build, apt-get) can take a couple of minutes.
      infra = await startInfra();
    },
    { timeout: 15 * 60_000 },
  );

  after(async () => {
    await infra?.stop();
  });

  function get(): Infra {
    assert.ok(infra, "infra did not start");
    return infra;
  }

  test("endpoints have the documented shapes", () => {
    const { kafka, mongo, redis, mode } = get();
    assert.ok(kafka.brokers.length > 0);
    for (const b of kafka.brokers) assert.match(b, /^[^:,\s]+:\d+$/);
    assert.match(mongo.url, /^mongodb:\/\//);
    assert.match(redis.url, /^rediss?:\/\//);
    assert.ok(["env", "docker", "local"].includes(mode));
  });

  test("kafka: createTopics, idempotent acks=-1 producer, consumer group consumes and commits", {
    timeout: 120_000,
  }, async () => {
    // The broker's super user (on a secured broker: PLAIN; else no login at all).
    const kafka = new Kafka({
      clientId: `infra-test-${suffix}`,
      ...get().kafka.client,
      logLevel: logLevel.NOTHING,
    });
    const admin = kafka.admin();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    // A short fetch wait keeps disconnect() quick: kafkajs waits for the in-flight fetch (default 5 s).
    const consumer = kafka.consumer({ groupId: `infra-test-${suffix}`, maxWaitTimeInMs: 100 });
    const topic = `infra-test-${suffix}`;
    await admin.connect();
    try {
      assert.equal(
        await admin.createTopics({
          topics: [{ topic, numPartitions: 2, replicationFactor: 1 }],
          waitForLeaders: true,
        }),
        true,
      );
      await producer.connect();
      const sent = await producer.send({
        topic,
        acks: -1,
        messages: [
          { key: "a", value: "one" },
          { key: "b", value: "two" },
          { key: "c", value: "three" },
        ],
      });
      assert.ok(sent.every((r) => r.errorCode === 0));

      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const received: string[] = [];
      await new Promise<void>((resolve, reject) => {
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              received.push(message.value?.toString() ?? "");
              await consumer.commitOffsets([
                { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
              ]);
              if (received.length === 3) resolve();
            },
          })
          .catch(reject);
      });
      assert.deepEqual([...received].sort(), ["one", "three", "two"]);

      const [offsets] = await admin.fetchOffsets({ groupId: `infra-test-${suffix}`, topics: [topic] });
      const committed = (offsets?.partitions ?? []).reduce(
        (sum, p) => sum + Math.max(0, Number(p.offset)),
        0,
      );
      assert.equal(committed, 3, "committed offsets should cover all three messages");
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  });

  /** The tests of the broker's security need one that has it: a local one always does. */
  function secured(t: TestContext): Infra | undefined {
    const infra = get();
    if (infra.mode === "local") assert.equal(infra.kafka.secured, true, "a local broker is secured");
    if (infra.kafka.secured) return infra;
    t.skip(`the broker (${infra.mode}) is not secured`);
    return undefined;
  }

  test("kafka: a client without credentials is refused", { timeout: 60_000 }, async (t) => {
    const infra = secured(t);
    if (!infra) return;
    assert.equal(infra.kafka.client.sasl?.mechanism, "plain", "the super user logs in with PLAIN");
    const anonymous = new Kafka({
      clientId: `infra-test-anonymous-${suffix}`,
      brokers: infra.kafka.brokers,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3000,
      retry: { retries: 0 },
    });
    const admin = anonymous.admin();
    try {
      // No PLAINTEXT listener: the broker drops a client that does not start with a SASL handshake.
      // (A broker that is not there would be ECONNREFUSED instead; the tests above reach this one.)
      await assert.rejects(
        async () => {
          await admin.connect();
          await admin.listTopics();
        },
        (error: unknown) => /closed connection|sasl|authenticat/i.test(describeError(error)),
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
  });

  test("kafka: after authorize(prefix) the generation service's own settings read its requests but cannot write them", {
    timeout: 120_000,
  }, async (t) => {
    const infra = secured(t);
    if (!infra) return;
    const prefix = `infra-test-${suffix}.`;
    const topic = topicNames(prefix).generationRequests;
    assert.equal(topic, `${prefix}generation.requests.v1`);
    const logger = createLogger({ service: "infra-test", level: "silent" });
    const superUser = createKafka({ ...infra.kafka.client, clientId: `infra-test-super-${suffix}`, logger });
    const admin = superUser.admin();
    const writer = superUser.producer();
    await admin.connect();
    try {
      // The super user (infra.kafka.client) creates a topic and writes to it.
      assert.equal(
        await admin.createTopics({
          topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
          waitForLeaders: true,
        }),
        true,
      );
      assert.ok((await admin.listTopics()).includes(topic));
      await writer.connect();
      await writer.send({ topic, acks: -1, messages: [{ key: "k", value: "from the conversation" }] });
      await writer.disconnect();

      await infra.kafka.authorize(prefix);
      const settings = infra.kafka.settings("generation");
      assert.equal(settings.KAFKA_SASL_MECHANISM, "oauthbearer");
      assert.equal(settings.KAFKA_OAUTH_CLIENT_ID, "generation");
      const config = loadConfig(baseSchema, { ...settings, KAFKA_TOPIC_PREFIX: prefix });
      const generation = createKafka({
        brokers: config.KAFKA_BROKERS,
        clientId: `infra-test-generation-${suffix}`,
        logger,
        security: config,
      });

      // Reads, in its own group.
      const consumer = generation.consumer({ groupId: `${prefix}generation`, maxWaitTimeInMs: 100 });
      await consumer.connect();
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        const received = await new Promise<string>((resolve, reject) => {
          consumer
            .run({ eachMessage: async ({ message }) => resolve(message.value?.toString() ?? "") })
            .catch(reject);
        });
        assert.equal(received, "from the conversation");
      } finally {
        await consumer.disconnect();
      }

      // Cannot write: the paid requests are the conversation's alone.
      const producer = generation.producer();
      await producer.connect();
      try {
        await assert.rejects(
          producer.send({ topic, acks: -1, messages: [{ key: "k", value: "forged" }] }),
          (error: unknown) => /TOPIC_AUTHORIZATION_FAILED|not authorized/i.test(describeError(error)),
        );
      } finally {
        await producer.disconnect();
      }
      const [partition] = await admin.fetchTopicOffsets(topic);
      assert.equal(partition?.high, "1", "nothing but the super user's record was written");
    } finally {
      await writer.disconnect().catch(() => {});
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  });

  test("infra.env() gives a second startInfra the same secured broker", { timeout: 60_000 }, async (t) => {
    const first = secured(t);
    if (!first) return;
    const second = await startInfra({ env: first.env(), log: () => {} });
    try {
      assert.equal(second.mode, "env");
      assert.equal(second.kafka.secured, true);
      assert.deepEqual(second.kafka.brokers, first.kafka.brokers);
      assert.deepEqual(second.kafka.settings("generation"), first.kafka.settings("generation"));
      const admin = new Kafka({
        clientId: `infra-test-second-${suffix}`,
        ...second.kafka.client,
        logLevel: logLevel.NOTHING,
      }).admin();
      await admin.connect();
      try {
        assert.ok(Array.isArray(await admin.listTopics()));
      } finally {
        await admin.disconnect();
      }
    } finally {
      // Started nothing, so stops nothing: the first infra's servers stay up.
      await second.stop();
    }
  });

  test("mongo: unique index rejects duplicates with 11000; findOneAndUpdate upserts", {
    timeout: 60_000,
  }, async () => {
    const client = new MongoClient(get().mongo.url);
    await client.connect();
    const db = client.db(`infra_test_${suffix}`);
    try {
      const users = db.collection<{ _id: string; email: string }>("users");
      await users.createIndex({ email: 1 }, { unique: true });
      await users.insertOne({ _id: "u1", email: "a@example.com" });
      await assert.rejects(
        users.insertOne({ _id: "u2", email: "a@example.com" }),
        (err: unknown) => err instanceof MongoServerError && err.code === 11000,
      );

      const counters = db.collection<{ _id: string; n: number; createdAt?: Date }>("counters");
      const first = await counters.findOneAndUpdate(
        { _id: "c1" },
        { $inc: { n: 1 }, $setOnInsert: { createdAt: new Date() } },
        { upsert: true, returnDocument: "after" },
      );
      assert.equal(first?.n, 1);
      const second = await counters.findOneAndUpdate(
        { _id: "c1" },
        { $inc: { n: 1 } },
        { returnDocument: "after" },
      );
      assert.equal(second?.n, 2);
      assert.ok(second?.createdAt instanceof Date);
    } finally {
      await db.dropDatabase().catch(() => {});
      await client.close();
    }
  });

  test("redis: SET/GET", { timeout: 30_000 }, async () => {
    const redis = new Redis(get().redis.url, { maxRetriesPerRequest: 1 });
    try {
      const key = `infra-test:${suffix}`;
      assert.equal(await redis.set(key, "value", "PX", 60_000), "OK");
      assert.equal(await redis.get(key), "value");
      assert.ok((await redis.pttl(key)) > 0);
      await redis.del(key);
    } finally {
      redis.disconnect();
    }
  });
});

/** An error's name, type (kafkajs) and message, and those of the errors it wraps. */
function describeError(error: unknown): string {
  const parts: string[] = [];
  let e = error;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    const wrapped = e as Error & { type?: unknown; cause?: unknown; originalError?: unknown };
    parts.push(wrapped.name, String(wrapped.type ?? ""), wrapped.message);
    e = wrapped.originalError ?? wrapped.cause;
  }
  return parts.join(" ");
}

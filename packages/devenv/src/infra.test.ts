// Needs real servers: if they cannot be provisioned or started, this file FAILS (it never skips),
// because every integration test downstream depends on exactly this working.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
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
    const kafka = new Kafka({
      clientId: `infra-test-${suffix}`,
      brokers: get().kafka.brokers,
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

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { baseSchema, ConfigError, loadConfig } from "@taituri/config";
import { freePort, type RestartableKafka, startRestartableKafka } from "@taituri/devenv";
import { createKafka } from "@taituri/kafka";
import { redisSecurity } from "@taituri/limiter-service/redis-connection";
import { createLogger } from "@taituri/logging";
import { runId } from "@taituri/testing/harness";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";

/**
 * Kafka and Redis credentials from the settings, on real servers: a broker of this file's own with a
 * SASL_PLAINTEXT listener (users checked by PLAIN and by SCRAM-SHA-256) beside its plaintext one, and
 * a redis-server with requirepass. A client built from the settings with the right credentials
 * works; the wrong password and none at all are refused, and nothing reaches the topic.
 */
const run = runId();
const topic = `it-sasl-${run}`;
const PASSWORD = `alice-${run}`;
const WRONG = `mallory-${run}`;
const dir = mkdtempSync(join(tmpdir(), "kafka-security-"));
const passwordFile = join(dir, "kafka-password");
writeFileSync(passwordFile, `${PASSWORD}\n`);

/** Every line a client's logger wrote, to show that no password is among them. */
const logLines: string[] = [];
const logger = createLogger({
  service: "it-kafka-security",
  level: "debug",
  destination: { write: (line: string) => logLines.push(line) },
});

let broker: RestartableKafka;
/** A client on the plaintext listener, to look at the topic without credentials in the way. */
let observer: Kafka;

const clientFrom = (env: Record<string, string>) => {
  const config = loadConfig(baseSchema, { KAFKA_BROKERS: (broker.saslBrokers ?? []).join(","), ...env });
  return createKafka({ brokers: config.KAFKA_BROKERS, clientId: `it-sasl-${run}`, logger, security: config });
};

const recordsInTopic = async () => {
  const admin = observer.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, partition) => sum + Number(partition.high), 0);
  } finally {
    await admin.disconnect();
  }
};

before(async () => {
  broker = await startRestartableKafka({ mode: "local", sasl: { users: { alice: PASSWORD } } });
  assert.ok(broker.saslBrokers?.length, "the broker has a SASL listener");
  observer = new Kafka({ clientId: "it-sasl-observer", brokers: broker.brokers, logLevel: logLevel.NOTHING });
  const admin = observer.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  await admin.disconnect();
});

after(async () => {
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("Kafka with SASL", () => {
  test("SCRAM-SHA-256 from the settings (password in a file): a record is produced and consumed", async () => {
    const kafka = clientFrom({
      KAFKA_SASL_MECHANISM: "scram-sha-256",
      KAFKA_SASL_USERNAME: "alice",
      KAFKA_SASL_PASSWORD_FILE: passwordFile,
    });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: "k", value: `scram-${run}` }] });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `it-sasl-${run}` });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      const value = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no record consumed in 30 s")), 30_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            clearTimeout(timer);
            resolve(message.value?.toString() ?? "");
          },
        });
      });
      assert.equal(value, `scram-${run}`);
    } finally {
      await consumer.disconnect();
    }
  });

  test("PLAIN from the settings: the admin gets in and sees the topic", async () => {
    const kafka = clientFrom({
      KAFKA_SASL_MECHANISM: "plain",
      KAFKA_SASL_USERNAME: "alice",
      KAFKA_SASL_PASSWORD: PASSWORD,
    });
    const admin = kafka.admin();
    await admin.connect();
    try {
      assert.ok((await admin.listTopics()).includes(topic));
    } finally {
      await admin.disconnect();
    }
  });

  test("a wrong password is refused, nothing is written, and the password is not logged", async () => {
    const before = await recordsInTopic();
    for (const mechanism of ["plain", "scram-sha-256"]) {
      const producer = clientFrom({
        KAFKA_SASL_MECHANISM: mechanism,
        KAFKA_SASL_USERNAME: "alice",
        KAFKA_SASL_PASSWORD: WRONG,
      }).producer();
      await assert.rejects(
        async () => {
          await producer.connect();
          await producer.send({ topic, messages: [{ value: "should not be written" }] });
        },
        (error: Error) => {
          assert.equal(error.name, "KafkaJSSASLAuthenticationError", `${mechanism}: ${error.message}`);
          assert.match(error.message, /authentication failed/i);
          return true;
        },
      );
      await producer.disconnect();
    }
    assert.equal(await recordsInTopic(), before);
    assert.ok(logLines.length > 0, "the clients logged");
    assert.ok(!logLines.some((line) => line.includes(WRONG) || line.includes(PASSWORD)));
  });

  test("no SASL on the SASL listener is refused and nothing is written", async () => {
    const before = await recordsInTopic();
    const producer = clientFrom({}).producer();
    await assert.rejects(
      async () => {
        await producer.connect();
        await producer.send({ topic, messages: [{ value: "should not be written" }] });
      },
      (error: Error) => {
        // The broker answers ApiVersions, then closes the connection at the first request that
        // needs a login; kafkajs retries that and gives up.
        assert.equal(error.name, "KafkaJSNumberOfRetriesExceeded", error.message);
        assert.match(error.message, /Closed connection/);
        return true;
      },
    );
    await producer.disconnect();
    assert.equal(await recordsInTopic(), before);
  });
});

describe("Redis with a password", () => {
  const redisPassword = `redis-${run}`;
  let server: ChildProcess;
  let url: string;

  before(async () => {
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    server = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--requirepass",
        redisPassword,
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new Redis(url, {
        password: redisPassword,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on("error", () => {});
      try {
        await probe.connect();
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        probe.disconnect();
      }
    }
  });

  after(() => {
    server?.kill("SIGTERM");
  });

  /** What each client's `error` event said: ioredis reports a refused AUTH there, then closes. */
  const errors = new Map<Redis, string[]>();
  const client = (env: Record<string, string>) => {
    const config = loadConfig(baseSchema, { REDIS_URL: url, ...env });
    const redis = new Redis(config.REDIS_URL, {
      ...redisSecurity(config),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    errors.set(redis, []);
    redis.on("error", (error: Error) => errors.get(redis)?.push(error.message));
    return redis;
  };

  test("REDIS_PASSWORD gets in", async () => {
    const redis = client({ REDIS_PASSWORD: redisPassword });
    try {
      await redis.set(`it-${run}`, "1");
      assert.equal(await redis.get(`it-${run}`), "1");
    } finally {
      redis.disconnect();
    }
  });

  test("REDIS_PASSWORD_FILE gets in", async () => {
    const file = join(dir, "redis-password");
    writeFileSync(file, `${redisPassword}\n`);
    const redis = client({ REDIS_PASSWORD_FILE: file });
    try {
      assert.equal(await redis.ping(), "PONG");
    } finally {
      redis.disconnect();
    }
  });

  test("without a password, or with a wrong one, Redis refuses", async () => {
    const none = client({});
    await assert.rejects(() => none.connect());
    none.disconnect();
    assert.match(errors.get(none)?.join("\n") ?? "", /NOAUTH/);
    const wrong = client({ REDIS_PASSWORD: "wrong" });
    await assert.rejects(() => wrong.connect());
    wrong.disconnect();
    assert.match(errors.get(wrong)?.join("\n") ?? "", /WRONGPASS/);
  });

  test("a missing password file is a configuration error naming it", () => {
    assert.throws(
      () => loadConfig(baseSchema, { REDIS_URL: url, REDIS_PASSWORD_FILE: join(dir, "absent") }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.problems.some((p) => p.startsWith("REDIS_PASSWORD_FILE:") && p.includes("does not exist")),
    );
  });
});

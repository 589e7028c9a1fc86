import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import {
  connectKafka,
  deadLetterTopic,
  headersToRecord,
  type IncomingMessage,
  type KafkaHandle,
  PermanentError,
  type RunningConsumer,
  startConsumer,
  TransientError,
} from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { eventually, runId } from "@taituri/testing/harness";

/** The shared consumer on a real broker: order per key, dead letters, retries. */
const logger = createLogger({ service: "it", level: "silent" });
const run = runId();
const topic = `it-${run}.consumer.v1`;
let infra: Infra;
let kafka: KafkaHandle;
let consumer: RunningConsumer | undefined;
const seen: IncomingMessage[] = [];
const attempts = new Map<string, number>();

before(async () => {
  infra = await startInfra();
  // The super user: these topics and groups are no service's, so no service's ACLs would allow them.
  kafka = await connectKafka({
    ...infra.kafka.client,
    clientId: "it-consumer",
    logger,
    topics: [
      { name: topic, partitions: 3 },
      { name: deadLetterTopic(topic), partitions: 1 },
    ],
  });
  consumer = await startConsumer({
    kafka: kafka.kafka,
    groupId: `it-${run}-group`,
    topics: [topic],
    producer: kafka.producer,
    logger,
    retryInitialMs: 20,
    retryMaxMs: 100,
    // Long enough for "flaky" below (two failures, ~60 ms of waits) to get through; a "bug" then
    // fails for all of it and is dead-lettered.
    retryForMs: 1_000,
    // Keys in parallel within a partition: the order, retry and dead-letter tests below must hold
    // with it (the services run this way).
    keyConcurrency: 4,
    handle: async (message) => {
      const body = message.value.toString();
      const attempt = (attempts.get(body) ?? 0) + 1;
      attempts.set(body, attempt);
      if (body.startsWith("poison")) throw new PermanentError(`cannot use ${body}`);
      if (body.startsWith("flaky") && attempt < 3) throw new TransientError("dependency down");
      if (body.startsWith("bug")) throw new Error("unexpected");
      if (body.startsWith("down")) throw new TransientError("dependency away for good");
      seen.push(message);
    },
  });
});

after(async () => {
  await consumer?.stop();
  await kafka?.close();
  await infra?.stop();
});

async function deadLetters(): Promise<IncomingMessage[]> {
  const found: IncomingMessage[] = [];
  const reader = kafka.kafka.consumer({ groupId: `it-${run}-dlq-${randomUUID()}`, maxWaitTimeInMs: 200 });
  await reader.connect();
  await reader.subscribe({ topic: deadLetterTopic(topic), fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message, partition }) => {
      found.push({
        topic: deadLetterTopic(topic),
        partition,
        offset: message.offset,
        key: message.key?.toString() ?? "",
        value: message.value ?? Buffer.alloc(0),
        headers: headersToRecord(message.headers),
      });
    },
  });
  await new Promise((resolve) => setTimeout(resolve, 2000));
  await reader.disconnect();
  return found;
}

/** A topic of its own for one test: `it-<run>.<name>.v1`. */
async function newTopic(name: string, partitions: number): Promise<string> {
  const topicName = `it-${run}.${name}.v1`;
  await kafka.admin.createTopics({
    topics: [{ topic: topicName, numPartitions: partitions }],
    waitForLeaders: true,
  });
  return topicName;
}

/** A consumer of `topicName` in `group` (`it-<run>-<group>`), four keys at a time per partition. */
function member(
  topicName: string,
  group: string,
  handle: (message: IncomingMessage) => Promise<void>,
): Promise<RunningConsumer> {
  return startConsumer({
    kafka: kafka.kafka,
    groupId: `it-${run}-${group}`,
    topics: [topicName],
    producer: kafka.producer,
    logger,
    keyConcurrency: 4,
    handle,
  });
}

describe("kafka consumer", () => {
  test("messages of one key are handled in the order they were produced", async () => {
    const keys = ["a", "b", "c", "d"];
    for (let i = 0; i < 20; i++) {
      await kafka.producer.send(
        topic,
        keys.map((key) => ({ key, value: Buffer.from(`${key}-${i}`) })),
      );
    }
    await eventually("all 80 messages", () => seen.length >= 80);
    for (const key of keys) {
      const order = seen.filter((m) => m.key === key).map((m) => Number(m.value.toString().split("-")[1]));
      assert.deepEqual(
        order,
        Array.from({ length: 20 }, (_, i) => i),
      );
    }
  });

  test("a permanent failure is dead-lettered with its reason and origin; the partition moves on", async () => {
    await kafka.producer.send(topic, [
      { key: "p", value: Buffer.from("poison-1"), headers: { "content-type": "text/plain" } },
      { key: "p", value: Buffer.from("after-poison") },
    ]);
    await eventually("the message after the poison", () =>
      seen.some((m) => m.value.toString() === "after-poison"),
    );
    const dead = (await deadLetters()).find((m) => m.value.toString() === "poison-1");
    assert.ok(dead, "poison message in the dead-letter topic");
    assert.equal(dead.key, "p");
    assert.equal(dead.headers["dlq-reason"], "permanent");
    assert.match(dead.headers["dlq-error"] ?? "", /PermanentError: cannot use poison-1/);
    assert.equal(dead.headers["dlq-source-topic"], topic);
    assert.match(dead.headers["dlq-source-offset"] ?? "", /^\d+$/);
    assert.equal(dead.headers["content-type"], "text/plain");
    assert.equal(attempts.get("poison-1"), 1);
  });

  test("a transient failure is retried in place until it succeeds, keeping order", async () => {
    await kafka.producer.send(topic, [
      { key: "f", value: Buffer.from("flaky-1") },
      { key: "f", value: Buffer.from("after-flaky") },
    ]);
    await eventually("the message after the flaky one", () =>
      seen.some((m) => m.value.toString() === "after-flaky"),
    );
    const order = seen.filter((m) => m.key === "f").map((m) => m.value.toString());
    assert.deepEqual(order, ["flaky-1", "after-flaky"]);
    assert.equal(attempts.get("flaky-1"), 3);
  });

  test("different keys of one partition are handled at once, each key in order", async () => {
    const single = await newTopic("one-partition", 1);
    const inFlight = new Set<string>();
    let allFourTogether = false;
    const handled: string[] = [];
    const parallel = await member(single, "parallel", async (message) => {
      const value = message.value.toString();
      inFlight.add(message.key);
      if (inFlight.size === 4) allFourTogether = true;
      // The first message of each key waits until all four keys are in hand, which happens only
      // if the consumer runs them side by side (one at a time, the first would wait forever).
      if (value.endsWith("-0")) await eventually("four keys in flight", () => allFourTogether);
      inFlight.delete(message.key);
      handled.push(value);
    });
    try {
      for (let i = 0; i < 3; i++) {
        await kafka.producer.send(
          single,
          ["a", "b", "c", "d"].map((key) => ({ key, value: Buffer.from(`${key}-${i}`) })),
        );
      }
      await eventually("all 12 messages", () => handled.length === 12);
      assert.ok(allFourTogether);
      for (const key of ["a", "b", "c", "d"]) {
        assert.deepEqual(
          handled.filter((v) => v.startsWith(key)),
          [`${key}-0`, `${key}-1`, `${key}-2`],
        );
      }
    } finally {
      await parallel.stop();
    }
  });

  test("a message produced while an earlier one is in hand starts without waiting for it", async () => {
    const single = await newTopic("ahead", 1);
    let releaseSlow: () => void = () => {};
    const slowHeld = new Promise<void>((resolve) => {
      releaseSlow = resolve;
    });
    const started: string[] = [];
    const finished: string[] = [];
    const ahead = await member(single, "ahead", async (message) => {
      const value = message.value.toString();
      started.push(value);
      if (value === "slow") await slowHeld;
      finished.push(value);
    });
    try {
      await kafka.producer.send(single, [{ key: "s", value: Buffer.from("slow") }]);
      await eventually("the slow message in hand", () => started.includes("slow"));
      // Fetched after the slow message's batch, which is still in hand: kafkajs alone would not
      // fetch again until that batch returned.
      await kafka.producer.send(single, [{ key: "q", value: Buffer.from("quick") }]);
      await eventually("the quick message handled", () => finished.includes("quick"));
      assert.deepEqual(finished, ["quick"]);
    } finally {
      releaseSlow();
      await ahead.stop();
    }
  });

  test("across a member joining and a restart, every message is handled and the group ends with no lag", async () => {
    const shared = await newTopic("rebalance", 4);
    const groupId = `it-${run}-rebalance`;
    const handled = new Map<string, number>();
    const join = () =>
      member(shared, "rebalance", async (message) => {
        // Slow enough that messages are waiting and in hand when the group changes.
        await new Promise((resolve) => setTimeout(resolve, 5));
        const value = message.value.toString();
        handled.set(value, (handled.get(value) ?? 0) + 1);
      });
    const produce = async (from: number, to: number) => {
      for (let i = from; i < to; i += 20) {
        await kafka.producer.send(
          shared,
          Array.from({ length: 20 }, (_, j) => ({
            key: `k${(i + j) % 16}`,
            value: Buffer.from(`m${i + j}`),
          })),
        );
      }
    };
    const first = await join();
    let second: RunningConsumer | undefined;
    let third: RunningConsumer | undefined;
    try {
      await produce(0, 200);
      second = await join();
      await produce(200, 400);
      // A member leaving with messages fetched and not yet handled: its successor handles them.
      await first.stop();
      third = await join();
      await produce(400, 600);
      await eventually("all 600 messages handled", () => handled.size === 600, 60_000);
      const expected = Array.from({ length: 600 }, (_, i) => `m${i}`);
      assert.deepEqual([...handled.keys()].sort(), expected.sort());
      // Everything handled is committed: no lag left for the group on any partition.
      await eventually(
        "the group's committed offsets at the end of each partition",
        async () => {
          const [committed] = await kafka.admin.fetchOffsets({ groupId, topics: [shared] });
          const ends = await kafka.admin.fetchTopicOffsets(shared);
          return ends.every(
            (end) => committed?.partitions.find((p) => p.partition === end.partition)?.offset === end.high,
          );
        },
        15_000,
      );
    } finally {
      await second?.stop();
      await third?.stop();
    }
  });

  test("an unclassified error is retried for a bounded time, then dead-lettered", async () => {
    await kafka.producer.send(topic, [{ key: "u", value: Buffer.from("bug-1") }]);
    const dead = await eventually("the dead letter", async () =>
      (await deadLetters()).find((m) => m.value.toString() === "bug-1"),
    );
    const reason = /^unknown error, retried for (\d+) s \((\d+) attempts\)$/.exec(
      dead.headers["dlq-reason"] ?? "",
    );
    assert.ok(reason, `dlq-reason: ${dead.headers["dlq-reason"]}`);
    // The attempts it names were made: several, spread over the second it was given.
    assert.equal(Number(reason[2]), attempts.get("bug-1"));
    assert.ok(Number(reason[2]) > 3, `${reason[2]} attempts`);
    assert.ok(Number(reason[1]) >= 1, `retried for ${reason[1]} s`);
  });

  test("a transient error that outlasts the bound is dead-lettered too; the key moves on", async () => {
    await kafka.producer.send(topic, [
      { key: "t", value: Buffer.from("down-1") },
      { key: "t", value: Buffer.from("after-down-1") },
    ]);
    const dead = await eventually("the dead letter", async () =>
      (await deadLetters()).find((m) => m.value.toString() === "down-1"),
    );
    assert.match(dead.headers["dlq-reason"] ?? "", /^transient error, retried for \d+ s \(\d+ attempts\)$/);
    assert.match(dead.headers["dlq-error"] ?? "", /TransientError: dependency away for good/);
    await eventually("the next message of that key", () =>
      seen.some((m) => m.value.toString() === "after-down-1"),
    );
  });
});

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import { createLogger } from "@taituri/logging";
import { type ConsumerConfig, Kafka, logLevel } from "kafkajs";
import { startConsumer } from "./consumer.ts";
import type { EventProducer } from "./producer.ts";

/**
 * A consumer that was stopped must never come back as a member of its group. kafkajs restarts a
 * crashed consumer on a timer, and a join in flight when stop() ran completes afterwards; either
 * one made a second member that held partitions and handled nothing (the chaos suite: a start
 * retried while Kafka was away, and every reply on those partitions lost).
 */

const logger = createLogger({ service: "unit", level: "silent" });

/** kafkajs's consumer, as much of it as startConsumer uses, with its config and events in hand. */
function fakeKafka() {
  const emitter = new EventEmitter();
  const state = {
    config: undefined as ConsumerConfig | undefined,
    disconnects: 0,
    /** What run() crashes with, as kafkajs's does when the first join fails (run still resolves). */
    crashOnRun: undefined as { error: Error; restart: boolean } | undefined,
  };
  const events = { GROUP_JOIN: "consumer.group_join", CRASH: "consumer.crash" };
  const consumer = {
    events,
    on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener),
    connect: async () => {},
    subscribe: async () => {},
    run: async () => {
      if (state.crashOnRun) emitter.emit(events.CRASH, { payload: { groupId: "unit", ...state.crashOnRun } });
    },
    pause: () => {},
    commitOffsets: async () => {},
    disconnect: async () => {
      state.disconnects += 1;
    },
  };
  const kafka = {
    consumer(config: ConsumerConfig) {
      state.config = config;
      return consumer;
    },
  } as unknown as Kafka;
  const join = () => emitter.emit(events.GROUP_JOIN, { payload: { memberAssignment: { t: [0] } } });
  return { kafka, state, join };
}

const start = (kafka: Kafka) =>
  startConsumer({
    kafka,
    groupId: "unit",
    topics: ["t"],
    handle: async () => {},
    producer: {} as EventProducer,
    logger,
  });

describe("a stopped consumer stays stopped", () => {
  test("kafkajs may restart a running consumer after a crash, never a stopped one", async () => {
    const { kafka, state } = fakeKafka();
    const running = await start(kafka);
    const restart = state.config?.retry?.restartOnFailure;
    assert.ok(restart, "the consumer tells kafkajs whether to restart");
    assert.equal(await restart(new Error("crash while running")), true);
    await running.stop();
    assert.equal(await restart(new Error("crash during or after stop")), false);
  });

  test("a join that completes after stop() leaves the group at once", async () => {
    const { kafka, state, join } = fakeKafka();
    const running = await start(kafka);
    join();
    assert.equal(state.disconnects, 0, "a live member keeps its partitions");
    await running.stop();
    assert.equal(state.disconnects, 1);
    join();
    assert.equal(state.disconnects, 2, "the late member disconnected");
  });

  // The contract the two above rely on, on kafkajs itself (a test that fails when it changes): a
  // crash consults retry.restartOnFailure, and its answer decides whether kafkajs restarts.
  test("kafkajs consults restartOnFailure after a retriable crash and restarts only on true", async () => {
    const kafka = new Kafka({
      clientId: "unit",
      brokers: ["127.0.0.1:1"],
      logLevel: logLevel.NOTHING,
      retry: { retries: 0, initialRetryTime: 10 },
    });
    const asked: Error[] = [];
    const consumer = kafka.consumer({
      groupId: "unit",
      retry: {
        retries: 0,
        restartOnFailure: async (error) => {
          asked.push(error);
          return false;
        },
      },
    });
    const crashes: { restart: boolean }[] = [];
    consumer.on(consumer.events.CRASH, ({ payload }) => crashes.push({ restart: payload.restart }));
    let starts = 0;
    consumer.on(consumer.events.CONNECT, () => {
      starts += 1;
    });
    // Nothing listens on port 1: the first start crashes with a retriable connection error.
    await consumer.run({ eachMessage: async () => {} });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(asked.length, 1);
    assert.deepEqual(crashes, [{ restart: false }]);
    assert.equal(starts, 0);
    await consumer.disconnect();
  });
});

describe("a start whose first join fails", () => {
  test("throws when kafkajs will not restart it (the group refused), and leaves the brokers", async () => {
    const { kafka, state } = fakeKafka();
    state.crashOnRun = { error: new Error("Failed to find group coordinator"), restart: false };
    await assert.rejects(start(kafka), /Failed to find group coordinator/);
    assert.equal(state.disconnects, 1);
  });

  test("returns when kafkajs restarts it by itself (the broker away)", async () => {
    const { kafka, state } = fakeKafka();
    state.crashOnRun = { error: new Error("Connection error"), restart: true };
    const running = await start(kafka);
    assert.equal(state.disconnects, 0);
    await running.stop();
  });
});

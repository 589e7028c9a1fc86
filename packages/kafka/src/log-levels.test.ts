import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { createLogger } from "@taituri/logging";
import { Kafka, type LogEntry, logLevel } from "kafkajs";
import { createKafka } from "./client.ts";
import { BOUNDED_RETRIES_WARNING, kafkajsProtocolErrors, levelOf } from "./log-levels.ts";
import { EventProducer } from "./producer.ts";

const entry = (namespace: string, level: logLevel, message: string, extra: object = {}): LogEntry => ({
  namespace,
  level,
  label: logLevel[level],
  log: { timestamp: new Date().toISOString(), logger: "kafkajs", message, ...extra },
});

const answer = (api: string, key: number, error: string) =>
  entry("Connection", logLevel.ERROR, `Response ${api}(key: ${key}, version: 3)`, {
    broker: "127.0.0.1:9092",
    clientId: "svc",
    error,
    correlationId: 4,
    size: 20,
  });

const error = (type: string) => {
  const found = kafkajsProtocolErrors().find((row) => row.type === type);
  assert.ok(found, `kafkajs's protocol error table has no ${type}`);
  return found;
};

describe("kafkajs's protocol error table (an internal this package reads)", () => {
  test("still says which answers kafkajs retries, by the messages its Connection logs", () => {
    // The answers a start on a fresh or busy broker gets, each retried by kafkajs itself.
    for (const type of [
      "GROUP_LOAD_IN_PROGRESS",
      "GROUP_COORDINATOR_NOT_AVAILABLE",
      "NOT_COORDINATOR_FOR_GROUP",
      "LEADER_NOT_AVAILABLE",
      "NOT_CONTROLLER",
    ])
      assert.equal(error(type).retriable, true, type);
    assert.equal(
      error("GROUP_LOAD_IN_PROGRESS").message,
      "The coordinator is loading and hence can't process requests for this group",
    );
    for (const type of ["TOPIC_AUTHORIZATION_FAILED", "SASL_AUTHENTICATION_FAILED", "TOPIC_ALREADY_EXISTS"])
      assert.equal(error(type).retriable, false, type);
  });

  test("no message stands for both a retriable error and one that is not", () => {
    const rows = kafkajsProtocolErrors();
    assert.ok(rows.length > 50);
    for (const row of rows) {
      const same = rows.filter((other) => other.message === row.message);
      assert.ok(
        same.every((other) => other.retriable === row.retriable),
        same.map((other) => other.type).join(", "),
      );
    }
  });
});

describe("the level a kafkajs line is written at", () => {
  test("a retriable answer, which kafkajs retries and its caller reports if it gives up, is debug", () => {
    assert.equal(levelOf(answer("InitProducerId", 22, error("GROUP_LOAD_IN_PROGRESS").message)), "debug");
    assert.equal(levelOf(answer("JoinGroup", 11, error("NOT_COORDINATOR_FOR_GROUP").message)), "debug");
  });

  test("an answer that is a failure stays an error", () => {
    assert.equal(levelOf(answer("Produce", 0, error("TOPIC_AUTHORIZATION_FAILED").message)), "error");
    assert.equal(levelOf(answer("Produce", 0, error("OUT_OF_ORDER_SEQUENCE_NUMBER").message)), "error");
    // "Topic creation errors" belongs to CreateTopics, whose caller decides; nowhere else.
    assert.equal(levelOf(answer("CreateTopics", 19, "Topic creation errors")), "debug");
    assert.equal(levelOf(answer("Metadata", 3, "Topic creation errors")), "error");
  });

  test("kafkajs's other lines keep their level", () => {
    assert.equal(
      levelOf(entry("Consumer", logLevel.ERROR, "Crash: KafkaJSNumberOfRetriesExceeded")),
      "error",
    );
    assert.equal(levelOf(entry("Producer", logLevel.WARN, "something else")), "warn");
    assert.equal(levelOf(entry("ConsumerGroup", logLevel.INFO, "Consumer has joined the group")), "info");
    // A retriable message from elsewhere than an answer is not an answer.
    assert.equal(levelOf(entry("Cluster", logLevel.ERROR, error("LEADER_NOT_AVAILABLE").message)), "error");
  });

  test("kafkajs still warns, in those words, when a producer like ours is created", () => {
    const seen: LogEntry[] = [];
    const kafka = new Kafka({
      clientId: "t",
      brokers: ["127.0.0.1:9"],
      logCreator: () => (e) => seen.push(e),
    });
    kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } });
    const warning = seen.find((e) => e.log.message === BOUNDED_RETRIES_WARNING);
    assert.ok(warning, "kafkajs no longer warns so: check producer.ts's renewProducer against it");
    assert.equal(warning.namespace, "Producer");
    assert.equal(warning.level, logLevel.WARN);
    assert.equal(levelOf(warning), "debug");
  });

  test("through createKafka, the warning is a debug line and nothing is logged above info", () => {
    const lines: { level: string; msg: string; namespace?: string }[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    });
    const logger = createLogger({ service: "t", level: "debug", destination });
    new EventProducer(createKafka({ brokers: ["127.0.0.1:9"], clientId: "t", logger }));
    const warning = lines.find((line) => line.msg === BOUNDED_RETRIES_WARNING);
    assert.equal(warning?.level, "debug");
    assert.equal(warning?.namespace, "Producer");
    assert.deepEqual(
      lines.filter((line) => line.level !== "debug" && line.level !== "info"),
      [],
    );
  });
});

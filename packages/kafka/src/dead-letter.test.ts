import assert from "node:assert/strict";
import { test } from "node:test";
import { pseudonym } from "@taituri/telemetry";
import type { KafkaMessage } from "kafkajs";
import { deadLetterOf } from "./dead-letter.ts";
import { PermanentError } from "./errors.ts";

const record: KafkaMessage = {
  key: Buffer.from("PN1:34600111222"),
  value: Buffer.from("the shopper's words, as they were"),
  headers: { "content-type": Buffer.from("application/x-protobuf"), traceparent: Buffer.from("00-a-b-01") },
  offset: "41",
  timestamp: "0",
  attributes: 0,
};

test("a dead letter is the record as it was, plus why and from where", () => {
  const dead = deadLetterOf(record, {
    topic: "t.payment.requests.v1",
    partition: 2,
    reason: "permanent",
    error: new PermanentError("cancel order PN1:34600111222/o9 without a known reason"),
    at: new Date("2026-12-01T10:00:00Z"),
  });
  assert.equal(dead.key, "PN1:34600111222");
  assert.deepEqual(dead.value, record.value);
  assert.deepEqual(dead.headers, {
    "content-type": "application/x-protobuf",
    traceparent: "00-a-b-01",
    "dlq-reason": "permanent",
    "dlq-error": `PermanentError: cancel order PN1:${pseudonym("34600111222")}/o9 without a known reason`,
    "dlq-source-topic": "t.payment.requests.v1",
    "dlq-source-partition": "2",
    "dlq-source-offset": "41",
    "dlq-at": "2026-12-01T10:00:00.000Z",
  });
});

test("ids in an error that is not an Error, or URL-encoded, are pseudonyms too", () => {
  const bsuid = "US.13491208655302741918";
  const dead = deadLetterOf(record, {
    topic: "t",
    partition: 0,
    reason: "unknown error, retried for 300 s (34 attempts)",
    error: `GET /internal/orders/PN1%3A${bsuid}%2Fo1 for %2B34600111222 failed`,
    at: new Date(0),
  });
  assert.equal(
    dead.headers?.["dlq-error"],
    `GET /internal/orders/PN1%3A${pseudonym(bsuid)}%2Fo1 for %2B${pseudonym("34600111222")} failed`,
  );
  assert.equal(dead.headers?.["dlq-reason"], "unknown error, retried for 300 s (34 attempts)");
});

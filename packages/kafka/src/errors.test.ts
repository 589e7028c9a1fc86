import assert from "node:assert/strict";
import { test } from "node:test";
import { classify, PermanentError, TransientError } from "./errors.ts";

test("errors are classified by type, anything else is unknown", () => {
  assert.equal(classify(new PermanentError("bad")), "permanent");
  assert.equal(classify(new TransientError("later")), "transient");
  assert.equal(classify(new Error("bug")), "unknown");
  assert.equal(classify("string"), "unknown");
});

test("kafkajs errors that mean the cluster is not answering are transient; protocol refusals are not", () => {
  const kafkaError = (name: string, retriable: boolean, cause?: Error) =>
    Object.assign(new Error("x", cause ? { cause } : {}), { name, retriable });
  assert.equal(classify(kafkaError("KafkaJSConnectionError", true)), "transient");
  const exhausted = kafkaError(
    "KafkaJSNumberOfRetriesExceeded",
    false,
    kafkaError("KafkaJSRequestTimeoutError", true),
  );
  assert.equal(classify(exhausted), "transient");
  assert.equal(
    classify(kafkaError("KafkaJSNonRetriableError", false, kafkaError("KafkaJSConnectionError", true))),
    "transient",
  );
  assert.equal(classify(kafkaError("KafkaJSProtocolError", false)), "unknown");
  assert.equal(classify(Object.assign(new Error("x"), { retriable: true })), "unknown");
});

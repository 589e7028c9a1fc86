import assert from "node:assert/strict";
import { test } from "node:test";
import { PermanentError } from "./errors.ts";
import { Header } from "./headers.ts";
import { decodeRecord, encodeRecord, kindOf, Records, TOPIC_RECORDS } from "./records.ts";
import { topicNames } from "./topics.ts";

const cancel = { orderId: "PN:1/o1", conversationId: "PN:1", reason: 1 as const };

test("a record encodes with its content type and decodes back", () => {
  const { value, headers } = encodeRecord(Records.cancelOrder, cancel);
  assert.equal(headers[Header.type], "application/x-protobuf; messageType=payment.v1.CancelOrder");
  const record = { topic: "t.payment.requests.v1", value, headers };
  assert.deepEqual(decodeRecord(Records.cancelOrder, record), cancel);
  // Without a header (an older producer), the kind the reader asks for.
  assert.deepEqual(decodeRecord(Records.cancelOrder, { ...record, headers: {} }), cancel);
});

test("another kind's record, or bytes that are no message, are permanent errors naming both", () => {
  const { value, headers } = encodeRecord(Records.cancelOrder, cancel);
  assert.throws(
    () => decodeRecord(Records.paymentRequest, { topic: "t.payment.requests.v1", value, headers }),
    (error) =>
      error instanceof PermanentError &&
      /payment\.v1\.CancelOrder.*read as payment\.v1\.PaymentRequest/.test(error.message),
  );
  assert.throws(
    () =>
      decodeRecord(Records.cancelOrder, {
        topic: "t.payment.requests.v1",
        value: Buffer.from([0xff, 0xff, 0xff]),
        headers,
      }),
    (error) => error instanceof PermanentError && /undecodable payment\.v1\.CancelOrder/.test(error.message),
  );
});

test("a topic's kinds: by content type, the first without one, a stranger refused", () => {
  const kinds = TOPIC_RECORDS.paymentRequests;
  const topic = "t.payment.requests.v1";
  assert.equal(
    kindOf(kinds, { topic, headers: encodeRecord(Records.cancelOrder, cancel).headers }),
    Records.cancelOrder,
  );
  assert.equal(kindOf(kinds, { topic, headers: {} }), Records.paymentRequest);
  assert.throws(
    () => kindOf(kinds, { topic, headers: { [Header.type]: Records.outboundMessage.contentType } }),
    (error) =>
      error instanceof PermanentError &&
      /carries payment\.v1\.PaymentRequest, payment\.v1\.CancelOrder/.test(error.message),
  );
});

test("every topic has its records", () => {
  assert.deepEqual(Object.keys(TOPIC_RECORDS).sort(), Object.keys(topicNames("")).sort());
});

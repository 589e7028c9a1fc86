import assert from "node:assert/strict";
import { test } from "node:test";
import {
  contentType,
  Header,
  type IncomingMessage,
  PermanentError,
  Records,
  topicNames,
} from "@taituri/kafka";
import { payment } from "@taituri/proto";
import type { Payments } from "../payments.ts";
import { createRequestHandler } from "./requests.ts";

const topics = topicNames("t.");

function handler() {
  const seen: string[] = [];
  const payments = {
    handleRequest: async (r: payment.PaymentRequest) => {
      seen.push(`request ${r.orderId}`);
    },
    cancel: async (c: payment.CancelOrder) => {
      seen.push(`cancel ${c.orderId} ${c.reason}`);
      return "cancelled";
    },
  } as unknown as Payments;
  return { handle: createRequestHandler({ payments, topics }), seen };
}

const record = (value: Uint8Array, type?: string): IncomingMessage => ({
  topic: topics.paymentRequests,
  partition: 0,
  offset: "0",
  key: "c",
  value: Buffer.from(value),
  headers: type === undefined ? {} : { [Header.type]: type },
});

const request = payment.PaymentRequest.encode({
  orderId: "c/o1",
  conversationId: "c",
  shopId: "s",
  designId: "d",
  imageId: "i",
  productId: "p",
  amount: 1,
  currency: "EUR",
  delivery: { method: { $case: "pickup", value: { locationId: "l", name: "n" } } },
  recipient: "r",
}).finish();
const cancel = payment.CancelOrder.encode({
  orderId: "c/o1",
  conversationId: "c",
  reason: payment.CancelReason.CANCEL_REASON_SHOPPER,
}).finish();

test("records are told apart by their content type; none means a PaymentRequest", async () => {
  const { handle, seen } = handler();
  await handle(record(request, Records.paymentRequest.contentType));
  await handle(record(cancel, Records.cancelOrder.contentType));
  await handle(record(request));
  assert.deepEqual(seen, ["request c/o1", "cancel c/o1 1", "request c/o1"]);
});

test("an unknown content type or an undecodable record is dead-lettered", async () => {
  const { handle, seen } = handler();
  await assert.rejects(
    handle(record(cancel, contentType("payment.v1.Refund"))),
    (e: unknown) => e instanceof PermanentError && /payment\.v1\.Refund.*which carries/.test(e.message),
  );
  await assert.rejects(
    handle(record(Buffer.from([0xff, 0xff, 0xff]), Records.cancelOrder.contentType)),
    (e: unknown) => e instanceof PermanentError && /undecodable payment\.v1\.CancelOrder/.test(e.message),
  );
  assert.deepEqual(seen, []);
});

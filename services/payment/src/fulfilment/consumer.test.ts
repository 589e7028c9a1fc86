import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeRecord, type IncomingMessage, PermanentError, Records, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { fulfilment } from "@taituri/proto";
import { Registry } from "prom-client";
import { createOrderPaidHandler } from "./consumer.ts";
import { createFulfilmentMetrics } from "./metrics.ts";
import type { DeliveryDoc, DeliveryLedger } from "./store.ts";

const topics = topicNames("t.");
const at = new Date("2026-03-01T12:00:00Z");

function setup(withEndpoint: (shop: string) => boolean) {
  const stored = new Map<string, DeliveryDoc>();
  const ledger = {
    record: async (doc: DeliveryDoc) => {
      if (stored.has(doc._id)) return "duplicate" as const;
      stored.set(doc._id, doc);
      return "stored" as const;
    },
  } as unknown as DeliveryLedger;
  const registry = new Registry();
  const metrics = createFulfilmentMetrics(registry, async () => ({ count: 0, oldest: null }));
  let wakes = 0;
  const handle = createOrderPaidHandler({
    ledger,
    endpoints: {
      forShop: (shop) =>
        withEndpoint(shop)
          ? { url: "https://s.example", secrets: ["x".repeat(32)], from: "default" }
          : undefined,
    },
    topics,
    metrics,
    logger: createLogger({ service: "test", level: "silent" }),
    wake: () => {
      wakes++;
    },
    now: () => at,
  });
  const value = async (name: string, labels: Record<string, string>) =>
    (await registry.getSingleMetric(name)?.get())?.values.find((v) =>
      Object.entries(labels).every(([k, l]) => v.labels[k] === l),
    )?.value ?? 0;
  return { handle, stored, value, wakes: () => wakes };
}

const paid = (
  number: string,
  shopId = "demo-shop",
  over: Partial<fulfilment.OrderPaid> = {},
): IncomingMessage => {
  const { value, headers } = encodeRecord(
    Records.orderPaid,
    fulfilment.OrderPaid.fromPartial({
      eventId: `order.paid:${number}`,
      orderNumber: number,
      shopId,
      amount: 1990,
      currency: "EUR",
      paidAt: at,
      ...over,
    }),
  );
  return { topic: topics.orders, partition: 0, offset: "0", key: number, value, headers };
};

test("one delivery per event id, due at once, and the worker woken; a redelivery changes nothing", async () => {
  const s = setup(() => true);
  await s.handle(paid("7KQ2-M9XD"));
  await s.handle(paid("7KQ2-M9XD"));
  const doc = s.stored.get("order.paid:7KQ2-M9XD");
  assert.equal(doc?.state, "pending");
  assert.equal(doc?.attempts, 0);
  assert.deepEqual(doc?.nextAttemptAt, at);
  assert.equal(doc?.orderNumber, "7KQ2-M9XD");
  // The record's own bytes, so the worker posts exactly what was paid.
  assert.equal(fulfilment.OrderPaid.decode(doc?.record as Buffer).amount, 1990);
  assert.equal(s.wakes(), 1);
  assert.equal(await s.value("fulfilment_orders_received_total", { outcome: "stored" }), 1);
  assert.equal(await s.value("fulfilment_orders_received_total", { outcome: "duplicate" }), 1);
});

test("a shop without endpoint: recorded for the orders CLI and counted, nothing to post", async () => {
  const s = setup((shop) => shop !== "quiet-shop");
  await s.handle(paid("AAAA-BBBB", "quiet-shop"));
  const doc = s.stored.get("order.paid:AAAA-BBBB");
  assert.equal(doc?.state, "no_endpoint");
  assert.equal(doc?.nextAttemptAt, null);
  assert.equal(s.wakes(), 0);
  assert.equal(await s.value("fulfilment_orders_without_endpoint_total", { shop: "quiet-shop" }), 1);
});

test("a record without what a shop needs, or not an OrderPaid, is dead-lettered", async () => {
  const s = setup(() => true);
  await assert.rejects(s.handle(paid("CCCC-DDDD", "demo-shop", { paidAt: undefined })), PermanentError);
  await assert.rejects(s.handle(paid("", "demo-shop", { eventId: "order.paid:" })), PermanentError);
  await assert.rejects(
    s.handle({ ...paid("EEEE-FFFF"), headers: { "content-type": Records.paymentEvent.contentType } }),
    PermanentError,
  );
  assert.equal(s.stored.size, 0);
});

test("records of other topics are not its business", async () => {
  const s = setup(() => true);
  await s.handle({ ...paid("GGGG-HHHH"), topic: topics.paymentEvents });
  assert.equal(s.stored.size, 0);
});

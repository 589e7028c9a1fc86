import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TransientError, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { payment } from "@taituri/proto";
import { Registry } from "prom-client";
import {
  type CreatedSession,
  type PaymentProvider,
  ProviderRefusal,
  type RefundRequest,
  type SessionRequest,
} from "./adapters/provider.ts";
import {
  type NewOrder,
  newOrderDoc,
  type OrderDoc,
  type OrderPatch,
  type OutboxEntry,
  type PaymentStore,
  transitionWrite,
} from "./adapters/store.ts";
import { parsePriceCatalog } from "./domain/catalog.ts";
import { type Change, canChange } from "./domain/order.ts";
import type { CheckoutEventLike } from "./domain/provider-event.ts";
import { createMetrics } from "./metrics.ts";
import { createPayments } from "./payments.ts";

/**
 * The order's life through createPayments with the provider and the store in memory: cancelling,
 * paying after a cancel or a replacement, refunds and their sweep, order numbers. The same on the
 * real servers: tests/integration/payment-cancel.test.ts.
 */
const topics = topicNames("t.");
const CONVERSATION = "PNX:15550001234";
const ORDER = `${CONVERSATION}/o1`;

/** Documents are never changed in place, so a shallow copy is a snapshot (and keeps Buffers Buffers). */
const copy = (doc: OrderDoc): OrderDoc => ({ ...doc });

/** The store's contract in memory: one claim per version, the table checked on every change. */
class MemoryStore {
  readonly orders = new Map<string, OrderDoc>();
  readonly sessions = new Map<string, string>();
  readonly events = new Map<string, { processed: boolean }>();

  async get(id: string) {
    const doc = this.orders.get(id);
    return doc ? copy(doc) : null;
  }
  async byNumber(number: string) {
    const found = [...this.orders.values()].find((o) => o.number === number);
    return found ? copy(found) : null;
  }
  async create(order: NewOrder, at: Date, draw: () => string) {
    for (let i = 0; i < 5; i++) {
      const number = draw();
      if (this.orders.has(order._id)) return copy(this.orders.get(order._id) as OrderDoc);
      if ([...this.orders.values()].some((o) => o.number === number)) continue;
      const doc = newOrderDoc(order, number, at);
      this.orders.set(order._id, doc);
      return copy(doc);
    }
    throw new Error("numbers taken");
  }
  async transition(
    order: OrderDoc,
    change: Change,
    patch: OrderPatch,
    outbox: OutboxEntry[],
    by: string,
    at: Date,
  ) {
    if (!canChange(order.state, change, order.cancelReason)) return undefined;
    return this.#commit(order, transitionWrite(order, change, patch, outbox, by, at));
  }
  async note(order: OrderDoc, patch: OrderPatch) {
    return this.#commit(order, patch);
  }
  #commit(order: OrderDoc, set: Partial<OrderDoc>) {
    const current = this.orders.get(order._id);
    if (current?.version !== order.version) return undefined;
    const next = { ...current, ...set, version: current.version + 1 } as OrderDoc;
    this.orders.set(order._id, next);
    return copy(next);
  }
  async clearOutbox(id: string, published: string[]) {
    const doc = this.orders.get(id);
    if (doc) this.orders.set(id, { ...doc, outbox: doc.outbox.filter((e) => !published.includes(e.id)) });
  }
  async recordSession(orderId: string, session: { id: string }) {
    this.sessions.set(session.id, orderId);
  }
  async sessionOrder(id: string) {
    return this.sessions.get(id);
  }
  async claimEvent(event: { _id: string }) {
    const seen = this.events.get(event._id);
    if (!seen) {
      this.events.set(event._id, { processed: false });
      return "new" as const;
    }
    return seen.processed ? ("processed" as const) : ("seen" as const);
  }
  async markEventProcessed(id: string) {
    this.events.set(id, { processed: true });
  }
  async unpublished() {
    return [...this.orders.values()].filter((o) => o.outbox.length > 0);
  }
  async dueForRefund(olderThan: Date) {
    return [...this.orders.values()].filter(
      (o) => o.state === "refund_due" && o.refundDueAt && o.refundDueAt <= olderThan,
    );
  }
}

/** A provider that records every call and fails when told to. */
class FakeProvider implements PaymentProvider {
  readonly name = "stripe" as const;
  readonly sessions: SessionRequest[] = [];
  readonly expired: string[] = [];
  readonly refunds: RefundRequest[] = [];
  failNext: { expire?: Error; refund?: Error } = {};
  async createSession(request: SessionRequest): Promise<CreatedSession> {
    this.sessions.push(request);
    const id = `cs_${request.idempotencyKey}`;
    return { id, url: `https://pay.example/${id}` };
  }
  async expireSession(sessionId: string) {
    const error = this.failNext.expire;
    this.failNext.expire = undefined;
    if (error) throw error;
    this.expired.push(sessionId);
    return "expired" as const;
  }
  verifyWebhook(): CheckoutEventLike {
    throw new Error("not used");
  }
  async refund(request: RefundRequest) {
    const error = this.failNext.refund;
    this.failNext.refund = undefined;
    if (error) throw error;
    this.refunds.push(request);
  }
}

const catalog = parsePriceCatalog({
  shops: [
    {
      id: "demo-shop",
      language: "en",
      currency: "EUR",
      product: { id: "mug", name: { en: "Mug" }, price: 1990 },
    },
  ],
});

function setup(options: { numbers?: string[] } = {}) {
  const store = new MemoryStore();
  const provider = new FakeProvider();
  const published: payment.PaymentEvent[] = [];
  const registry = new Registry();
  const metrics = createMetrics(registry, async () => ({}));
  let clock = new Date("2026-05-01T10:00:00Z").getTime();
  const numbers = options.numbers ? [...options.numbers] : undefined;
  const payments = createPayments({
    store: store as unknown as PaymentStore,
    provider,
    publisher: {
      async send(_topic, messages) {
        for (const m of messages) published.push(payment.PaymentEvent.decode(m.value));
      },
    },
    topics,
    catalog,
    sessionTtlMs: 30 * 60_000,
    metrics,
    logger: createLogger({ service: "test", level: "silent" }),
    now: () => new Date(clock),
    ...(numbers ? { drawNumber: () => numbers.shift() ?? "ZZZZ-ZZZZ" } : {}),
  });
  const request = (orderId = ORDER): payment.PaymentRequest => ({
    orderId,
    conversationId: CONVERSATION,
    shopId: "demo-shop",
    designId: "d1",
    imageId: "i1",
    productId: "mug",
    amount: 1990,
    currency: "EUR",
  });
  const cancel = (reason: payment.CancelReason, orderId = ORDER) =>
    payments.cancel({ orderId, conversationId: CONVERSATION, reason });
  const pay = (sessionId: string, id = "evt_paid") =>
    payments.applyProviderEvent({
      id,
      type: "checkout.session.completed",
      data: { object: { id: sessionId, payment_status: "paid", payment_intent: "pi_1" } },
    });
  const order = () => store.orders.get(ORDER) as OrderDoc;
  const outcomes = () => published.map((e) => e.outcome?.$case);
  const metric = async (name: string) =>
    (await registry.getSingleMetricAsString(name))
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
  return {
    store,
    provider,
    published,
    payments,
    request,
    cancel,
    pay,
    order,
    outcomes,
    metric,
    tick: (ms: number) => {
      clock += ms;
    },
  };
}

const { CANCEL_REASON_SHOPPER: SHOPPER, CANCEL_REASON_REPLACED: REPLACED } = payment.CancelReason;

describe("order numbers", () => {
  test("assigned at creation, kept by redeliveries, on every event, and all the provider sees", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD", "AAAA-BBBB"] });
    await t.payments.handleRequest(t.request());
    await t.payments.handleRequest(t.request());
    assert.equal(t.order().number, "7KQ2-M9XD");
    assert.deepEqual(
      t.published.map((e) => [e.orderNumber, e.outcome?.$case]),
      [
        ["7KQ2-M9XD", "linkCreated"],
        ["7KQ2-M9XD", "linkCreated"],
      ],
    );
    assert.deepEqual(t.provider.sessions, [
      {
        orderNumber: "7KQ2-M9XD",
        attempt: 1,
        idempotencyKey: "7KQ2-M9XD",
        amount: 1990,
        currency: "EUR",
        productName: "Mug",
        expiresAt: new Date("2026-05-01T10:30:00Z"),
      },
    ]);
  });

  test("a number another order holds is drawn again", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD", "7KQ2-M9XD", "AAAA-BBBB"] });
    await t.payments.handleRequest(t.request(`${CONVERSATION}/o1`));
    await t.payments.handleRequest(t.request(`${CONVERSATION}/o2`));
    assert.equal(t.store.orders.get(`${CONVERSATION}/o2`)?.number, "AAAA-BBBB");
  });

  test("an order is found by its id or its number in any form people type", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD"] });
    await t.payments.handleRequest(t.request());
    for (const asked of [ORDER, "7KQ2-M9XD", "7kq2m9xd", "7kq2-m9xd"])
      assert.equal((await t.payments.findOrder(asked))?._id, ORDER, asked);
    assert.equal(await t.payments.findOrder("7KQ2-M9XE"), null);
  });
});

describe("cancel", () => {
  test("closes the open session at the provider in one claimed write; a redelivery closes it again", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    const sessionId = t.order().session?.id ?? "";
    assert.equal(await t.cancel(SHOPPER), "cancelled");
    assert.equal(t.order().state, "cancelled");
    assert.equal(t.order().cancelReason, "shopper");
    assert.equal(t.order().openUntil, null);
    assert.deepEqual(t.provider.expired, [sessionId]);
    assert.equal(await t.cancel(SHOPPER), "already_cancelled");
    assert.deepEqual(t.provider.expired, [sessionId, sessionId]);
    // No event: the conversation asked for it. A later "buy" of it is answered failed.
    assert.deepEqual(t.outcomes(), ["linkCreated"]);
    await t.payments.handleRequest(t.request());
    assert.deepEqual(t.outcomes(), ["linkCreated", "failed"]);
    const failed = t.published[1]?.outcome;
    assert.equal(failed?.$case === "failed" && failed.value.reason, "order cancelled");
    assert.equal(t.provider.sessions.length, 1, "no new session");
    assert.match(
      await t.metric("payment_order_cancellations_total"),
      /reason="shopper",outcome="cancelled"} 1\n.*reason="shopper",outcome="already_cancelled"} 1/,
    );
  });

  test("a provider outage while closing is retried with the message; the order is cancelled once", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    t.provider.failNext.expire = new Error("connect ECONNREFUSED");
    await assert.rejects(t.cancel(SHOPPER), TransientError);
    assert.equal(t.order().state, "cancelled");
    assert.equal(t.provider.expired.length, 0);
    assert.equal(await t.cancel(SHOPPER), "already_cancelled");
    assert.equal(t.provider.expired.length, 1);
    assert.equal(t.order().history.filter((h) => h.state === "cancelled").length, 1);
  });

  test("a provider refusal to close is logged, not retried: a payment that lands is still handled", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    t.provider.failNext.expire = new ProviderRefusal("no such session");
    assert.equal(await t.cancel(SHOPPER), "cancelled");
  });

  test("an order with no open session is cancelled without a call; a paid one is left alone", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    await t.payments.applyProviderEvent({
      id: "evt_exp",
      type: "checkout.session.expired",
      data: { object: { id: t.order().session?.id ?? "" } },
    });
    assert.equal(await t.cancel(REPLACED), "cancelled");
    assert.deepEqual(t.provider.expired, []);

    const u = setup();
    await u.payments.handleRequest(u.request());
    await u.pay(u.order().session?.id ?? "");
    assert.equal(await u.cancel(SHOPPER), "already_paid");
    assert.equal(u.order().state, "paid");
    assert.deepEqual(u.provider.expired, []);
    assert.deepEqual(u.outcomes(), ["linkCreated", "succeeded"]);
  });

  test("an unknown order, an unknown reason", async () => {
    const t = setup();
    assert.equal(await t.cancel(SHOPPER, "nope/o9"), "unknown_order");
    await assert.rejects(
      t.payments.cancel({ orderId: ORDER, conversationId: CONVERSATION, reason: 0 }),
      /without a known reason/,
    );
  });
});

describe("a payment after a cancel", () => {
  test("cancelled by the shopper: refunded automatically, once, and the shopper is told", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD"] });
    await t.payments.handleRequest(t.request());
    const sessionId = t.order().session?.id ?? "";
    await t.cancel(SHOPPER);
    assert.equal(await t.pay(sessionId), "applied");
    assert.equal(await t.pay(sessionId, "evt_paid_again"), "duplicate");
    assert.equal(t.order().state, "refunded");
    assert.equal(t.order().paidSessionId, sessionId);
    assert.deepEqual(
      t.order().history.map((h) => h.state),
      ["created", "link_sent", "cancelled", "refund_due", "refunded"],
    );
    assert.deepEqual(t.provider.refunds, [
      { orderNumber: "7KQ2-M9XD", amount: 1990, idempotencyKey: "refund:7KQ2-M9XD", paymentRef: "pi_1" },
    ]);
    assert.deepEqual(t.outcomes(), ["linkCreated", "refunded"]);
    const last = t.published[1];
    assert.equal(last?.orderNumber, "7KQ2-M9XD");
    assert.deepEqual(last?.outcome, {
      $case: "refunded",
      value: {
        reason: payment.RefundReason.REFUND_REASON_CANCELLED_BEFORE_PAYMENT,
        amount: 1990,
        currency: "EUR",
      },
    });
    assert.match(await t.metric("payment_refunds_total"), /reason="cancelled_before_payment"} 1/);
  });

  test("a refund the provider could not take now is finished by the sweep, after the grace", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    const sessionId = t.order().session?.id ?? "";
    await t.cancel(SHOPPER);
    t.provider.failNext.refund = new Error("Stripe 503");
    assert.equal(await t.pay(sessionId), "applied", "the payment is recorded whatever the refund does");
    assert.equal(t.order().state, "refund_due");
    assert.equal(await t.payments.refundDueRetries(5000), 0, "the writer may still be at work");
    t.tick(6000);
    assert.equal(await t.payments.refundDueRetries(5000), 1);
    assert.equal(t.order().state, "refunded");
    assert.equal(t.provider.refunds.length, 1);
    assert.deepEqual(t.outcomes(), ["linkCreated", "refunded"]);
  });

  test("a refund the provider refuses waits for a person; the sweep stops asking", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    await t.cancel(SHOPPER);
    t.provider.failNext.refund = new ProviderRefusal("charge disputed");
    await t.pay(t.order().session?.id ?? "");
    assert.equal(t.order().state, "refund_due");
    assert.equal(t.order().refundRefused, "charge disputed");
    t.tick(60_000);
    assert.equal(await t.payments.refundDueRetries(5000), 0);
    // The shop retries by hand once it is sorted out.
    assert.equal(((await t.payments.refund(t.order().number)) as OrderDoc).state, "refunded");
  });

  test("replaced by another design: kept, paid and confirmed", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    const sessionId = t.order().session?.id ?? "";
    await t.cancel(REPLACED);
    assert.equal(await t.pay(sessionId), "applied");
    assert.equal(t.order().state, "paid");
    assert.deepEqual(t.outcomes(), ["linkCreated", "succeeded"]);
    assert.deepEqual(t.provider.refunds, []);
  });
});

describe("refund by the shop", () => {
  test("paid → refund_due → refunded, refunded{BY_SHOP} published once; repeating it is fine", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    await t.pay(t.order().session?.id ?? "");
    assert.equal(await t.payments.refund("nope"), "not_found");
    const done = await t.payments.refund(ORDER);
    assert.equal((done as OrderDoc).state, "refunded");
    assert.equal(((await t.payments.refund(ORDER)) as OrderDoc).state, "refunded");
    assert.equal(t.provider.refunds.length, 1);
    assert.deepEqual(t.outcomes(), ["linkCreated", "succeeded", "refunded"]);
    const refunded = t.published[2]?.outcome;
    assert.equal(
      refunded?.$case === "refunded" && refunded.value.reason,
      payment.RefundReason.REFUND_REASON_BY_SHOP,
    );
  });

  test("only a paid order", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    assert.equal(await t.payments.refund(ORDER), "not_paid");
    await t.cancel(SHOPPER);
    assert.equal(await t.payments.refund(ORDER), "not_paid");
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Header, PermanentError, Records, TransientError, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { fulfilment, payment } from "@taituri/proto";
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
import { createPayments, InvalidTrackingUrl } from "./payments.ts";

/**
 * The order's life through createPayments with the provider and the store in memory: cancelling,
 * paying after a cancel or a replacement, refunds and their sweep, order numbers, the delivery, the
 * order event for the shop, shipping. The same on the real servers:
 * tests/integration/payment-cancel.test.ts.
 */
const topics = topicNames("t.");
const CONVERSATION = "PNX:15550001234";
const ORDER = `${CONVERSATION}/o1`;

/** Documents are never changed in place, so a shallow copy is a snapshot (and keeps Buffers Buffers). */
const copy = (doc: OrderDoc): OrderDoc => ({ ...doc });

/** The store's contract in memory: one claim per version, the table checked on every change. */
class MemoryStore {
  readonly orders = new Map<string, OrderDoc>();
  readonly sessions = new Map<string, { orderId: string; attempt: number; url: string; expiresAt: Date }>();
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
  async recordSession(
    orderId: string,
    session: { id: string; attempt: number; url: string; expiresAt: Date },
  ) {
    this.sessions.set(session.id, {
      orderId,
      attempt: session.attempt,
      url: session.url,
      expiresAt: session.expiresAt,
    });
  }
  async sessionOrder(id: string) {
    return this.sessions.get(id)?.orderId;
  }
  async sessionFor(orderId: string, attempt: number) {
    const found = [...this.sessions].find(([, s]) => s.orderId === orderId && s.attempt === attempt);
    return found ? { id: found[0], url: found[1].url, expiresAt: found[1].expiresAt, attempt } : undefined;
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
    // Stripe's ids: `cs_` and letters, digits and underscores.
    const id = `cs_${request.idempotencyKey.replace(/\W/g, "_")}`;
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
      delivery: {
        countries: ["ES", "PT"],
        pickup: [{ id: "sol", name: { en: "Sol kiosk" }, address: "Puerta del Sol 1, Madrid" }],
      },
    },
  ],
});

const ADDRESS: payment.PostalAddress = {
  name: "Ana García",
  line1: "Calle Mayor 5",
  line2: "3º B",
  city: "Madrid",
  postcode: "28013",
  country: "ES",
};
const POSTED: payment.Delivery = { method: { $case: "address", value: ADDRESS } };

/** One record as published: its topic, key, content type and value. */
interface Published {
  topic: string;
  key: string;
  type: string | undefined;
  value: Buffer | Uint8Array;
}

function setup(options: { numbers?: string[] } = {}) {
  const store = new MemoryStore();
  const provider = new FakeProvider();
  const published: payment.PaymentEvent[] = [];
  const records: Published[] = [];
  const kafka = { down: false };
  const registry = new Registry();
  const metrics = createMetrics(registry, async () => ({}));
  let clock = new Date("2026-05-01T10:00:00Z").getTime();
  const numbers = options.numbers ? [...options.numbers] : undefined;
  const payments = createPayments({
    store: store as unknown as PaymentStore,
    provider,
    publisher: {
      async send(topic, messages) {
        if (kafka.down) throw new Error("Kafka unreachable");
        for (const m of messages) {
          records.push({ topic, key: m.key, type: m.headers?.[Header.type], value: m.value });
          if (topic === topics.paymentEvents) published.push(payment.PaymentEvent.decode(m.value));
        }
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
    delivery: POSTED,
    recipient: "Ana",
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
  const ordersPaid = () =>
    records
      .filter((r) => r.topic === topics.orders)
      .map((r) => ({ ...r, event: fulfilment.OrderPaid.decode(r.value) }));
  const metric = async (name: string) =>
    (await registry.getSingleMetricAsString(name))
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
  return {
    store,
    provider,
    published,
    records,
    ordersPaid,
    kafka,
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
        shipping: {
          name: "Ana García",
          line1: "Calle Mayor 5",
          line2: "3º B",
          city: "Madrid",
          postcode: "28013",
          country: "ES",
        },
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

describe("provider events: only the session's own order", () => {
  const completed = (sessionId: unknown, orderNumber?: unknown, id: unknown = "evt_forged") =>
    ({
      id,
      type: "checkout.session.completed",
      data: {
        object: {
          id: sessionId,
          payment_status: "paid",
          ...(orderNumber === undefined ? {} : { metadata: { order_number: orderNumber } }),
        },
      },
    }) as unknown as CheckoutEventLike;

  test("a session we never created is unknown_order, whatever order number it names", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD"] });
    await t.payments.handleRequest(t.request());
    assert.equal(await t.payments.applyProviderEvent(completed("cs_forged", "7KQ2-M9XD")), "unknown_order");
    assert.equal(t.order().state, "link_sent");
    assert.deepEqual(t.outcomes(), ["linkCreated"]);
  });

  test("our session naming another order's number changes neither order", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD", "AAAA-BBBB"] });
    await t.payments.handleRequest(t.request(`${CONVERSATION}/o1`));
    await t.payments.handleRequest(t.request(`${CONVERSATION}/o2`));
    const own = t.store.orders.get(`${CONVERSATION}/o2`)?.session?.id;
    assert.equal(await t.payments.applyProviderEvent(completed(own, "7KQ2-M9XD")), "order_mismatch");
    assert.deepEqual(
      [...t.store.orders.values()].map((o) => o.state),
      ["link_sent", "link_sent"],
    );
    // Naming its own order (or none) it pays that one.
    assert.equal(await t.payments.applyProviderEvent(completed(own, "AAAA-BBBB", "evt_own")), "applied");
    assert.equal(t.store.orders.get(`${CONVERSATION}/o2`)?.state, "paid");
    assert.equal(t.order().state, "link_sent");
  });

  test("an id of another type or shape is malformed and reaches no store method", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD"] });
    await t.payments.handleRequest(t.request());
    const calls: string[] = [];
    for (const name of ["claimEvent", "sessionOrder", "get", "byNumber"] as const) {
      const original = t.store[name].bind(t.store) as (...args: unknown[]) => unknown;
      (t.store as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
        calls.push(name);
        return original(...args);
      };
    }
    for (const event of [
      completed({ $gt: "" }),
      completed(t.order().session?.id, { $gt: "" }),
      completed(t.order().session?.id, undefined, { $gt: "" }),
    ])
      assert.equal(await t.payments.applyProviderEvent(event), "malformed");
    assert.equal(await t.payments.findOrder({ $gt: "" } as unknown as string), null);
    assert.equal(await t.payments.findOrder("PNX:1 /o1"), null);
    assert.deepEqual(calls, []);
    assert.equal(t.order().state, "link_sent");
  });

  test("a session opened before a crash is the one the order gets when the request is redone", async () => {
    const t = setup();
    const transition = t.store.transition.bind(t.store);
    t.store.transition = async () => {
      throw new Error("crashed before the order was written");
    };
    await assert.rejects(t.payments.handleRequest(t.request()), /crashed/);
    t.store.transition = transition;
    await t.payments.handleRequest(t.request());
    assert.equal(t.provider.sessions.length, 1, "one session opened at the provider");
    assert.equal(t.store.sessions.size, 1);
    assert.equal(t.order().session?.id, [...t.store.sessions.keys()][0]);
    assert.deepEqual(t.outcomes(), ["linkCreated"]);
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

describe("the delivery", () => {
  test("is stored with the order; a pickup sends the provider no shipping address", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    assert.equal(t.order().recipient, "Ana");
    assert.deepEqual(t.order().delivery, {
      method: "address",
      name: "Ana García",
      line1: "Calle Mayor 5",
      line2: "3º B",
      city: "Madrid",
      postcode: "28013",
      country: "ES",
    });

    const u = setup();
    await u.payments.handleRequest({
      ...u.request(),
      delivery: { method: { $case: "pickup", value: { locationId: "sol", name: "Luis" } } },
    });
    assert.deepEqual(u.order().delivery, {
      method: "pickup",
      locationId: "sol",
      name: "Luis",
      location: { name: "Sol kiosk", address: "Puerta del Sol 1, Madrid" },
    });
    assert.equal(u.provider.sessions[0]?.shipping, undefined);
  });

  test("missing, incomplete or not served: rejected like a bad price, and the shopper is told", async () => {
    const cases: [Partial<payment.PaymentRequest>, string][] = [
      [{ delivery: undefined }, "no delivery"],
      [{ recipient: "" }, "no recipient"],
      [
        { delivery: { method: { $case: "address", value: { ...ADDRESS, postcode: "" } } } },
        "delivery address without postcode",
      ],
      [
        { delivery: { method: { $case: "address", value: { ...ADDRESS, country: "US" } } } },
        "shop demo-shop does not deliver to US (only ES, PT)",
      ],
      [
        { delivery: { method: { $case: "pickup", value: { locationId: "moon", name: "Luis" } } } },
        'shop demo-shop has no pickup point "moon"',
      ],
    ];
    for (const [over, reason] of cases) {
      const t = setup();
      await assert.rejects(
        t.payments.handleRequest({ ...t.request(), ...over }),
        (e: unknown) => e instanceof PermanentError && e.message.endsWith(`rejected: ${reason}`),
      );
      assert.deepEqual(
        t.published.map((e) => [e.orderNumber, e.outcome]),
        [["", { $case: "failed", value: { reason: `rejected: ${reason}` } }]],
      );
      assert.equal(t.store.orders.size, 0, "no order");
      assert.equal(t.provider.sessions.length, 0, "no session");
      assert.match(await t.metric("payment_requests_total"), /outcome="rejected"} 1/);
      // Nothing the shopper typed is in the reason (it is logged with the dead letter).
      for (const value of [ADDRESS.name, ADDRESS.line1, ADDRESS.line2, ADDRESS.city, ADDRESS.postcode])
        assert.ok(!reason.includes(value), value);
    }
  });
});

describe("the order event for the shop", () => {
  test("a payment writes OrderPaid on the orders topic, keyed by order number, in the same write", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD"] });
    await t.payments.handleRequest(t.request());
    t.tick(60_000);
    assert.equal(await t.pay(t.order().session?.id ?? ""), "applied");
    const [paid, ...more] = t.ordersPaid();
    assert.equal(more.length, 0);
    assert.equal(paid?.key, "7KQ2-M9XD");
    assert.equal(paid?.type, Records.orderPaid.contentType);
    assert.deepEqual(paid?.event, {
      eventId: "order.paid:7KQ2-M9XD",
      orderNumber: "7KQ2-M9XD",
      shopId: "demo-shop",
      productId: "mug",
      productName: "Mug",
      amount: 1990,
      currency: "EUR",
      imageId: "i1",
      recipient: "Ana",
      delivery: POSTED,
      paidAt: new Date("2026-05-01T10:01:00Z"),
    });
    // The conversation id (the shopper's phone number) is nowhere in the record.
    assert.ok(
      !Buffer.from(paid?.value ?? [])
        .toString("latin1")
        .includes("15550001234"),
    );
    assert.deepEqual(t.outcomes(), ["linkCreated", "succeeded"]);
    assert.deepEqual(t.order().outbox, [], "both relayed");
    // A redelivered webhook changes nothing and publishes nothing.
    assert.equal(await t.pay(t.order().session?.id ?? "", "evt_paid_again"), "duplicate");
    assert.equal(t.ordersPaid().length, 1);
  });

  test("a replaced order that is paid is sent; one the shopper cancelled is refunded, not sent", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    await t.cancel(REPLACED);
    await t.pay(t.order().session?.id ?? "");
    assert.equal(t.ordersPaid().length, 1);

    const u = setup();
    await u.payments.handleRequest(u.request());
    await u.cancel(SHOPPER);
    await u.pay(u.order().session?.id ?? "");
    assert.equal(u.order().state, "refunded");
    assert.deepEqual(u.ordersPaid(), []);
  });

  test("left in the outbox by a writer that could not publish, it is published by the sweep", async () => {
    const t = setup();
    await t.payments.handleRequest(t.request());
    t.kafka.down = true;
    await assert.rejects(t.pay(t.order().session?.id ?? ""), /Kafka unreachable/);
    assert.equal(t.order().state, "paid");
    assert.equal(t.order().outbox.length, 2);
    t.kafka.down = false;
    assert.equal(await t.payments.relayStale(0), 1);
    assert.equal(t.ordersPaid().length, 1);
    assert.deepEqual(t.outcomes(), ["linkCreated", "succeeded"]);
    assert.deepEqual(t.order().outbox, []);
  });
});

describe("shipping", () => {
  async function paid(t: ReturnType<typeof setup>) {
    await t.payments.handleRequest(t.request());
    await t.pay(t.order().session?.id ?? "");
  }

  test("paid → shipped with the tracking URL, shipped{tracking_url} to the conversation; once", async () => {
    const t = setup({ numbers: ["7KQ2-M9XD"] });
    await paid(t);
    t.tick(3_600_000);
    const shipped = await t.payments.markShipped("7kq2m9xd", " https://track.example/p/1 ");
    assert.equal((shipped as OrderDoc).state, "shipped");
    assert.equal(t.order().trackingUrl, "https://track.example/p/1");
    assert.deepEqual(t.order().shippedAt, new Date("2026-05-01T11:00:00Z"));
    assert.deepEqual(t.order().outbox, []);
    const event = t.records.at(-1);
    assert.equal(event?.topic, topics.paymentEvents);
    assert.equal(event?.key, CONVERSATION);
    assert.deepEqual(t.published.at(-1)?.outcome, {
      $case: "shipped",
      value: { trackingUrl: "https://track.example/p/1" },
    });
    assert.equal(t.published.at(-1)?.orderNumber, "7KQ2-M9XD");

    // Again (a retried call, another URL): the order as it is, no second event.
    const again = await t.payments.markShipped(ORDER, "https://track.example/p/2");
    assert.equal((again as OrderDoc).trackingUrl, "https://track.example/p/1");
    assert.deepEqual(t.outcomes(), ["linkCreated", "succeeded", "shipped"]);
    assert.equal(t.order().history.filter((h) => h.state === "shipped").length, 1);
    assert.match(await t.metric("payment_orders_shipped_total"), /^payment_orders_shipped_total 1$/m);
    assert.match(await t.metric("payment_order_transitions_total"), /from="paid",to="shipped"} 1/);
  });

  test("without a tracking URL the event carries none", async () => {
    const t = setup();
    await paid(t);
    await t.payments.markShipped(ORDER);
    assert.equal(t.order().trackingUrl, undefined);
    assert.deepEqual(t.published.at(-1)?.outcome, { $case: "shipped", value: { trackingUrl: "" } });
  });

  test("only a paid order; an unknown one is not found; a bad URL is refused before anything", async () => {
    const t = setup();
    assert.equal(await t.payments.markShipped("7KQ2-M9XD"), "not_found");
    await t.payments.handleRequest(t.request());
    assert.equal(await t.payments.markShipped(ORDER), "not_shippable");
    await t.cancel(SHOPPER);
    assert.equal(await t.payments.markShipped(ORDER), "not_shippable");

    const u = setup();
    await paid(u);
    for (const url of ["ftp://track.example/1", "not a url", `https://t.example/${"x".repeat(2000)}`])
      await assert.rejects(u.payments.markShipped(ORDER, url), InvalidTrackingUrl);
    assert.equal(u.order().state, "paid");
  });

  test("a shipped order: a new request restates success, a cancel is too late, the shop can refund", async () => {
    const t = setup();
    await paid(t);
    await t.payments.markShipped(ORDER);
    await t.payments.handleRequest(t.request());
    assert.equal(await t.cancel(SHOPPER), "already_paid");
    assert.deepEqual(t.outcomes(), ["linkCreated", "succeeded", "shipped", "succeeded"]);
    assert.equal(((await t.payments.refund(ORDER)) as OrderDoc).state, "refunded");
    assert.equal(t.provider.refunds.length, 1);
    assert.deepEqual(
      t.order().history.map((h) => h.state),
      ["created", "link_sent", "paid", "shipped", "refund_due", "refunded"],
    );
  });

  test("a shipped event a writer could not publish is published by the sweep", async () => {
    const t = setup();
    await paid(t);
    t.kafka.down = true;
    await assert.rejects(t.payments.markShipped(ORDER, "https://track.example/p/1"), /Kafka unreachable/);
    assert.equal(t.order().state, "shipped");
    t.kafka.down = false;
    assert.equal(await t.payments.relayStale(0), 1);
    assert.deepEqual(t.outcomes(), ["linkCreated", "succeeded", "shipped"]);
  });
});

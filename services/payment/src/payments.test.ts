import assert from "node:assert/strict";
import { after, test } from "node:test";
import { type OutgoingMessage, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { SpanKind, trace, withSpan } from "@taituri/telemetry";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { Registry } from "prom-client";
import type { PaymentProvider } from "./adapters/provider.ts";
import type { OrderDoc, OutboxEntry, PaymentStore } from "./adapters/store.ts";
import { createMetrics } from "./metrics.ts";
import { createPayments } from "./payments.ts";

// A real tracer and the W3C propagator (no exporter: the spans' contexts are what is under test).
const telemetry = startTelemetry({ serviceName: "payment-test", spanProcessors: [] });
after(() => telemetry.shutdown());

const topics = topicNames("t.");

/** What a publish saw: the messages and the span context active when it was called. */
interface Sent {
  topic: string;
  messages: OutgoingMessage[];
  traceId: string | undefined;
  spanId: string | undefined;
}

function order(outbox: OutboxEntry[] = []): OrderDoc {
  const at = new Date("2025-01-01T00:00:00Z");
  return {
    _id: "PN:1/o1",
    number: "7KQ2-M9XD",
    conversationId: "PN:1",
    shopId: "demo-shop",
    productId: "mug",
    productName: "Mug",
    designId: "d1",
    imageId: "i1",
    amount: 1990,
    currency: "EUR",
    provider: "local",
    state: "link_sent",
    attempt: 1,
    session: {
      id: "cs_1",
      url: "http://x/checkout/cs_1",
      expiresAt: new Date(at.getTime() + 60_000),
      attempt: 1,
    },
    openUntil: new Date(at.getTime() + 60_000),
    version: 3,
    outbox,
    outboxSince: outbox.length > 0 ? at : null,
    history: [],
    createdAt: at,
    updatedAt: at,
  };
}

/** One order in memory, with the store methods the webhook path and the sweeper use. */
function fakeStore(initial: OrderDoc) {
  let doc = initial;
  const store = {
    get: async () => doc,
    claimEvent: async () => "new" as const,
    sessionOrder: async () => doc._id,
    markEventProcessed: async () => {},
    transition: async (
      _o: OrderDoc,
      _c: string,
      patch: Partial<OrderDoc>,
      outbox: OutboxEntry[],
    ): Promise<OrderDoc> => {
      doc = { ...doc, ...patch, state: "paid", version: doc.version + 1, outbox: [...doc.outbox, ...outbox] };
      return doc;
    },
    clearOutbox: async (_id: string, published: string[]) => {
      doc = { ...doc, outbox: doc.outbox.filter((e) => !published.includes(e.id)) };
    },
    unpublished: async () => (doc.outbox.length > 0 ? [doc] : []),
  };
  return { store: store as unknown as PaymentStore, current: () => doc };
}

function build(store: PaymentStore, sent: Sent[], dying: { now: boolean }) {
  return createPayments({
    store,
    provider: { name: "local" } as PaymentProvider,
    publisher: {
      async send(topic, messages) {
        // A writer that dies between its write and its publish.
        if (dying.now) throw new Error("writer died before publishing");
        const active = trace.getActiveSpan()?.spanContext();
        sent.push({ topic, messages, traceId: active?.traceId, spanId: active?.spanId });
      },
    },
    topics,
    catalog: { shops: [] } as never,
    sessionTtlMs: 60_000,
    metrics: createMetrics(new Registry(), async () => ({})),
    logger: createLogger({ service: "test", level: "silent" }),
  });
}

const traceparent = (traceId: string, spanId: string) => `00-${traceId}-${spanId}-01`;
const entry = (id: string, headers: Record<string, string>): OutboxEntry => ({
  id,
  topic: topics.paymentEvents,
  key: "PN:1",
  value: Buffer.from(id),
  headers: { "content-type": "x", ...headers },
});

test("an event a dead writer left in the outbox is published by the sweeper from the writer's trace", async () => {
  const { store, current } = fakeStore(order());
  const sent: Sent[] = [];
  const dying = { now: true };
  const payments = build(store, sent, dying);
  let writer: { traceId: string; spanId: string } | undefined;
  await assert.rejects(
    withSpan("t", "webhook", { kind: SpanKind.SERVER }, async (span) => {
      writer = span.spanContext();
      await payments.applyProviderEvent({
        id: "evt_1",
        type: "checkout.session.completed",
        data: { object: { id: "cs_1", payment_status: "paid", metadata: { order_number: "7KQ2-M9XD" } } },
      });
    }),
    /writer died/,
  );
  assert.ok(writer);
  const left = current().outbox;
  assert.equal(left.length, 2, "succeeded for the conversation, OrderPaid for the shop");
  for (const e of left) assert.equal(e.headers.traceparent, traceparent(writer.traceId, writer.spanId));

  // The sweeper runs in a trace of its own: the event must still be published from the writer's.
  dying.now = false;
  const sweep = await withSpan("t", "sweep", {}, async (span) => {
    await payments.relayStale(0);
    return span.spanContext();
  });
  assert.deepEqual(
    sent.map((s) => s.topic),
    [topics.paymentEvents, topics.orders],
  );
  for (const s of sent) {
    assert.equal(s.traceId, writer.traceId);
    assert.equal(s.spanId, writer.spanId);
    assert.notEqual(s.traceId, sweep.traceId);
  }
  assert.deepEqual(current().outbox, []);
});

test("entries of different traces are published in one group per trace; entries without one as before", async () => {
  const a = traceparent("a".repeat(32), "1".repeat(16));
  const b = traceparent("b".repeat(32), "2".repeat(16));
  const { store, current } = fakeStore(
    order([
      entry("e1", { traceparent: a, tracestate: "k=v" }),
      entry("e2", { traceparent: b }),
      entry("e3", { traceparent: a, tracestate: "k=v" }),
      entry("legacy", {}),
    ]),
  );
  const sent: Sent[] = [];
  const payments = build(store, sent, { now: false });
  const sweep = await withSpan("t", "sweep", {}, async (span) => {
    await payments.relayStale(0);
    return span.spanContext();
  });
  const seen = sent.map((s) => ({ ids: s.messages.map((m) => m.value.toString()), traceId: s.traceId }));
  assert.deepEqual(seen, [
    { ids: ["e1", "e3"], traceId: "a".repeat(32) },
    { ids: ["e2"], traceId: "b".repeat(32) },
    // Written before entries carried a trace: published from the caller's, as it always was.
    { ids: ["legacy"], traceId: sweep.traceId },
  ]);
  assert.equal(sent[0]?.spanId, "1".repeat(16));
  assert.deepEqual(current().outbox, []);
});

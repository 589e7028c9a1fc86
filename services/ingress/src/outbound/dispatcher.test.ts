import assert from "node:assert/strict";
import { test } from "node:test";
import { PermanentError, type Publisher, TransientError, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import type { ImageStore } from "@taituri/mongo";
import { inbound, outbound } from "@taituri/proto";
import { type BulkWriteResult, type Db, type Document, MongoBulkWriteError, MongoServerError } from "mongodb";
import { Registry } from "prom-client";
import { type GraphApiClient, GraphApiError } from "../adapters/graph-api.ts";
import { IngressStore, SENDS, SENT } from "../adapters/store.ts";
import { createStatusHandler } from "../statuses/tracker.ts";
import { CallbackData } from "./callback-data.ts";
import { createOutboundHandler } from "./dispatcher.ts";
import { Pacer } from "./pacer.ts";

/**
 * The dispatcher's choice of recipient and its answer to Meta's 131062, on an in-memory database:
 * the claim, the record and the take-over are those of the real handler and store adapter; only
 * the database, the Graph API and Kafka are fakes. tests/integration/whatsapp-edge.test.ts runs
 * the same on the real servers.
 */

/** Collections keyed by `_id`, answering the few operations IngressStore uses, as MongoDB would. */
function memoryDb() {
  const collections = new Map<string, Map<string, Document>>();
  const docsOf = (name: string) => {
    const docs = collections.get(name) ?? new Map<string, Document>();
    collections.set(name, docs);
    return docs;
  };
  const matches = (doc: Document, filter: Document) =>
    Object.entries(filter).every(([key, value]) =>
      typeof value === "object" && value !== null && "$lt" in value
        ? doc[key] < (value as { $lt: number }).$lt
        : doc[key] === value,
    );
  const duplicate = (id: unknown) =>
    new MongoServerError({ message: `E11000 duplicate key ${id}`, code: 11000 });
  const db = {
    collection(name: string) {
      const docs = docsOf(name);
      return {
        async insertOne(doc: Document) {
          if (docs.has(doc._id)) throw duplicate(doc._id);
          docs.set(doc._id, structuredClone(doc));
          return { insertedId: doc._id };
        },
        async insertMany(batch: Document[]) {
          const writeErrors = batch.flatMap((doc, index) => {
            if (docs.has(doc._id)) return [{ index, code: 11000, errmsg: duplicate(doc._id).message }];
            docs.set(doc._id, structuredClone(doc));
            return [];
          });
          if (writeErrors.length > 0)
            throw new MongoBulkWriteError(
              { message: "duplicate key", code: 11000, writeErrors } as never,
              {} as BulkWriteResult,
            );
          return { insertedCount: batch.length };
        },
        async findOne(filter: Document) {
          const doc = [...docs.values()].find((d) => matches(d, filter));
          return doc ? structuredClone(doc) : null;
        },
        async updateOne(filter: Document, update: { $set: Document }, options?: { upsert?: boolean }) {
          const doc = [...docs.values()].find((d) => matches(d, filter));
          if (doc) Object.assign(doc, update.$set);
          else if (options?.upsert) {
            // As MongoDB: the upsert inserts the filter's _id, and collides with a document that
            // has it but did not match the rest of the filter.
            if (docs.has(filter._id)) throw duplicate(filter._id);
            docs.set(filter._id, { _id: filter._id, ...structuredClone(update.$set) });
          }
          return { matchedCount: doc ? 1 : 0 };
        },
      };
    },
  };
  return { db: db as unknown as Db, docsOf };
}

type Answer = (body: Record<string, unknown>) => string | GraphApiError;

/** A Graph API that answers each send by `answer` and keeps the bodies it was sent. */
function fakeGraph(answer: Answer) {
  const bodies: Record<string, unknown>[] = [];
  const graph = {
    async sendMessage(_phoneNumberId: string, payload: Record<string, unknown>) {
      bodies.push(payload);
      const result = answer(payload);
      if (result instanceof GraphApiError) throw result;
      return { messageId: result };
    },
  };
  return { graph: graph as unknown as GraphApiClient, bodies };
}

const refusedBsuid = () =>
  new GraphApiError(
    "Graph API 400 (code 131062): Business-scoped User ID recipients are not supported for this message",
    400,
    131062,
  );

const callbackData = new CallbackData("unit-test-pseudonym-key");

function dispatcher(answer: Answer, clock = { now: Date.now() }) {
  const { db, docsOf } = memoryDb();
  const { graph, bodies } = fakeGraph(answer);
  const published: { topic: string; value: Uint8Array; key: string }[] = [];
  const publisher: Publisher = {
    async send(topic, messages) {
      for (const m of messages) published.push({ topic, key: m.key, value: m.value });
    },
  };
  const registry = new Registry();
  const topics = topicNames("unit.");
  const handle = createOutboundHandler({
    store: new IngressStore(db),
    graph,
    images: {} as ImageStore,
    pacer: new Pacer(1000),
    publisher,
    topics,
    logger: createLogger({ service: "unit", level: "silent" }),
    registry,
    leaseMs: 60_000,
    callbackData,
    now: () => new Date(clock.now),
  });
  const statuses = createStatusHandler({
    store: new IngressStore(db),
    callbackData,
    publisher,
    topics,
    registry,
    now: () => new Date(clock.now),
  });
  /** Meta's status webhook for a send, as ingress stores it on the inbound topic. */
  const status = (wamid: string, callbackData: string, conversationId: string) =>
    statuses({
      topic: topics.inbound,
      partition: 0,
      offset: "0",
      key: conversationId,
      value: Buffer.from(
        inbound.InboundEvent.encode({
          eventId: `${wamid}:sent`,
          conversationId,
          business: undefined,
          receivedAt: new Date(clock.now),
          payload: {
            $case: "status",
            value: {
              messageId: wamid,
              kind: inbound.StatusKind.STATUS_KIND_SENT,
              recipientId: "US.1",
              at: new Date(clock.now),
              errors: [],
              pricingCategory: "service",
              billable: false,
              callbackData,
            },
          },
        }).finish(),
      ),
      headers: {},
    });
  const deliver = (message: outbound.OutboundMessage) =>
    handle({
      topic: topics.outbound,
      partition: 0,
      offset: "0",
      key: message.conversationId,
      value: Buffer.from(outbound.OutboundMessage.encode(message).finish()),
      headers: {},
    });
  const failures = () =>
    published
      .filter((p) => p.topic === topics.inbound)
      .map((p) => inbound.InboundEvent.decode(p.value))
      .flatMap((e) =>
        e.payload?.$case === "deliveryFailure" ? [{ event: e, failure: e.payload.value }] : [],
      );
  const metrics = () => registry.getSingleMetricAsString("outbound_sends_total");
  return {
    deliver,
    status,
    registry,
    bodies,
    failures,
    metrics,
    claims: docsOf(SENDS),
    sent: docsOf(SENT),
  };
}

let seq = 0;
function message(ids: { to?: string; recipientUserId?: string }): outbound.OutboundMessage {
  seq += 1;
  return {
    id: `out-${seq}`,
    conversationId: `PN:${ids.recipientUserId || ids.to}`,
    phoneNumberId: "PN",
    to: ids.to ?? "",
    recipientUserId: ids.recipientUserId ?? "",
    replyToMessageId: "",
    lastInboundAt: new Date(Date.now() - 60_000),
    content: { $case: "text", value: { body: "Hello", previewUrl: false } },
  };
}

const permanent = (error: unknown) => error instanceof PermanentError;

test("a shopper with a BSUID is sent to by `recipient` and no `to`, phone number known or not", async () => {
  const d = dispatcher(() => "wamid.1");
  await d.deliver(message({ recipientUserId: "US.1" }));
  await d.deliver(message({ to: "447700900001", recipientUserId: "US.2" }));
  await d.deliver(message({ to: "447700900002" }));
  assert.deepEqual(
    d.bodies.map((b) => [b.to, b.recipient]),
    [
      [undefined, "US.1"],
      [undefined, "US.2"],
      ["447700900002", undefined],
    ],
  );
  assert.match(await d.metrics(), /outcome="sent",code="",recipient="bsuid"\} 2/);
  assert.match(await d.metrics(), /outcome="sent",code="",recipient="phone"\} 1/);
});

test("131062 on a BSUID with a phone number known: sent again to the number, once, and recorded sent", async () => {
  const d = dispatcher((body) => (body.recipient ? refusedBsuid() : "wamid.by-phone"));
  const m = message({ to: "447700900003", recipientUserId: "US.3" });
  await d.deliver(m);
  assert.deepEqual(
    d.bodies.map((b) => [b.to, b.recipient]),
    [
      [undefined, "US.3"],
      ["447700900003", undefined],
    ],
  );
  assert.equal(d.sent.get(m.id)?.wamid, "wamid.by-phone");
  assert.equal(d.claims.get(m.id)?.bsuidRefused, true);
  assert.deepEqual(d.failures(), []);
  // Delivered again (a redelivery): the claim and the record say it is done; nothing is sent.
  await d.deliver(m);
  assert.equal(d.bodies.length, 2);
  const metrics = await d.metrics();
  assert.match(metrics, /outcome="bsuid_refused",code="131062",recipient="bsuid"\} 1/);
  assert.match(metrics, /outcome="sent",code="",recipient="phone"\} 1/);
});

test("a retry after the number's send failed goes to the number at once: the claim remembers the refusal", async () => {
  let throttled = false;
  const d = dispatcher((body) => {
    if (body.recipient) return refusedBsuid();
    if (!throttled) {
      throttled = true;
      return new GraphApiError("Graph API 400 (code 130429): Rate limit hit", 400, 130429);
    }
    return "wamid.after-retry";
  });
  const m = message({ to: "447700900004", recipientUserId: "US.4" });
  await assert.rejects(d.deliver(m), (error) => error instanceof TransientError);
  await d.deliver(m);
  assert.deepEqual(
    d.bodies.map((b) => b.to ?? b.recipient),
    ["US.4", "447700900004", "447700900004"],
  );
  assert.equal(d.sent.get(m.id)?.wamid, "wamid.after-retry");
});

test("131062 on a BSUID with no phone number: a permanent failure told to the conversation", async () => {
  const d = dispatcher(() => refusedBsuid());
  const m = message({ recipientUserId: "US.5" });
  await assert.rejects(d.deliver(m), permanent);
  assert.equal(d.bodies.length, 1, "never retried, nothing else to send to");
  const [told] = d.failures();
  assert.equal(told?.event.eventId, `delivery-failure:${m.id}`);
  assert.equal(told?.event.conversationId, m.conversationId);
  assert.equal(told?.failure.reason, inbound.DeliveryFailureReason.DELIVERY_FAILURE_REASON_REJECTED);
  assert.equal(told?.failure.code, 131062);
  assert.match(
    told?.failure.detail ?? "",
    /BSUID\) recipient is not supported here, and no phone number is known/,
  );
  assert.equal(d.claims.get(m.id)?.status, "failed");
  assert.equal(d.claims.get(m.id)?.error?.code, 131062);
  // A redelivery finds the failed claim and says it again, the same way, without a send.
  await d.deliver(m);
  assert.equal(d.bodies.length, 1);
  assert.equal(d.failures()[1]?.failure.code, 131062);
  assert.equal(d.failures()[1]?.failure.detail, told?.failure.detail);
  assert.match(await d.metrics(), /outcome="rejected",code="131062",recipient="bsuid"\} 1/);
});

test("131062 on a send by phone number is a plain permanent rejection, not a reason to try again", async () => {
  const d = dispatcher(() => refusedBsuid());
  const m = message({ to: "447700900006" });
  await assert.rejects(d.deliver(m), permanent);
  assert.equal(d.bodies.length, 1);
  const [told] = d.failures();
  assert.equal(told?.failure.code, 131062);
  assert.doesNotMatch(told?.failure.detail ?? "", /no phone number is known/);
  assert.match(await d.metrics(), /outcome="rejected",code="131062",recipient="phone"\} 1/);
});

test("the number's own refusal after a BSUID refusal is the failure the conversation hears", async () => {
  const d = dispatcher((body) =>
    body.recipient
      ? refusedBsuid()
      : new GraphApiError("Graph API 400 (code 131026): Message undeliverable", 400, 131026),
  );
  const m = message({ to: "447700900007", recipientUserId: "US.7" });
  await assert.rejects(d.deliver(m), permanent);
  assert.equal(d.bodies.length, 2);
  assert.equal(d.failures()[0]?.failure.code, 131026);
});

test("a message with no phone number and no BSUID never reaches Meta", async () => {
  const d = dispatcher(() => "wamid.never");
  await assert.rejects(d.deliver(message({})), permanent);
  assert.equal(d.bodies.length, 0);
  assert.equal(
    d.failures()[0]?.failure.reason,
    inbound.DeliveryFailureReason.DELIVERY_FAILURE_REASON_INVALID_CONTENT,
  );
  assert.match(d.failures()[0]?.failure.detail ?? "", /no recipient/);
});

/**
 * A sender that dies after Meta took the message and before its "sent" record (a SIGKILL there
 * is the chaos suite's finding: replies sent twice after ingress was killed). Meta echoes the
 * outbound id in the message's statuses (biz_opaque_callback_data); the status records the send,
 * so the take-over after the lease finds it sent.
 */
test("a send whose sender died before recording it is not sent again once its status named it", async () => {
  const clock = { now: Date.now() };
  let calls = 0;
  const d = dispatcher(() => {
    calls += 1;
    return `wamid.crash.${calls}`;
  }, clock);
  const m = message({ recipientUserId: "US.10" });
  await d.deliver(m);
  // What a sender that died at Meta's answer leaves: the claim, and no record.
  d.sent.delete(m.id);
  // Sealed: the outbound id (which can name the conversation) does not travel in clear.
  const sealed = String(d.bodies[0]?.biz_opaque_callback_data);
  assert.ok(!sealed.includes(m.id) && !sealed.includes("US.10"), sealed);
  assert.equal(callbackData.open(sealed), m.id);
  await d.status("wamid.crash.1", sealed, m.conversationId);
  assert.equal(d.sent.get(m.id)?.wamid, "wamid.crash.1");
  assert.equal(d.sent.get(m.id)?.conversationId, m.conversationId);
  assert.match(
    (await d.registry.getSingleMetricAsString("outbound_sent_recorded_from_status_total")) ?? "",
    /outbound_sent_recorded_from_status_total 1/,
  );
  // The lease runs out and the message is delivered again (the take-over): nothing is sent.
  clock.now += 61_000;
  await d.deliver(m);
  assert.equal(d.bodies.length, 1);
});

test("without a status the take-over sends again: the one duplicate the dispatcher documents", async () => {
  const clock = { now: Date.now() };
  const d = dispatcher(() => "wamid.nostatus", clock);
  const m = message({ recipientUserId: "US.11" });
  await d.deliver(m);
  d.sent.delete(m.id);
  clock.now += 61_000;
  await d.deliver(m);
  assert.equal(d.bodies.length, 2);
});

test("a status whose callback data we did not seal, or that names no claim of ours, records nothing", async () => {
  const d = dispatcher(() => "wamid.other");
  const m = message({ recipientUserId: "US.12" });
  await d.deliver(m);
  d.sent.delete(m.id);
  // Another app's value, the id in clear (forged), one sealed under another key: nothing opens.
  for (const other of ["someone-elses-tracker", m.id, new CallbackData("another-deployment-key").seal(m.id)])
    await d.status("wamid.other-app", other, m.conversationId);
  // Sealed by us, but for no claim here.
  await d.status("wamid.unknown", callbackData.seal("out-never-claimed"), m.conversationId);
  assert.equal(d.sent.size, 0);
});

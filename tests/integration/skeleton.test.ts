import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { loadConversationConfig } from "@taituri/conversation-service/config";
import { startConversationService } from "@taituri/conversation-service/service";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { createKafka, headersToRecord, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { eventually, type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { Redis } from "ioredis";
import type { Kafka } from "kafkajs";
import { MongoClient } from "mongodb";

/**
 * The walking skeleton on the real servers: a signed webhook goes through ingress, Kafka, the
 * conversation service, MongoDB and the outbound dispatcher to a fake Graph API.
 */
const exporter = new InMemorySpanExporter();
const processor = new SimpleSpanProcessor(exporter);
const telemetry = startTelemetry({ serviceName: "integration", spanProcessors: [processor] });

const SECRET = "it-app-secret";
const TOKEN = "it-access-token";
// Starts with a letter: an all-digit id would look like a phone number to the privacy redaction,
// and the topic names in span names and attributes would come back pseudonymised.
const run = `r${randomUUID().slice(0, 7)}`;
const prefix = `it-${run}.`;
const topics = topicNames(prefix);
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });

let infra: Infra;
let graph: FakeGraphApi;
let kafka: Kafka;
let ingress: Awaited<ReturnType<typeof startIngressService>>;
let conversation: Awaited<ReturnType<typeof startConversationService>>;

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  // Each service logs in to Kafka as itself, allowed only its own topics and groups under the prefix.
  await infra.kafka.authorize(prefix);
  const env = {
    MONGO_URL: infra.mongo.url,
    MONGO_DB: `it_${run}`,
    REDIS_URL: infra.redis.url,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_PARTITIONS: "3",
  };
  ingress = await startIngressService(
    loadIngressConfig({
      ...env,
      ...infra.kafka.settings("ingress"),
      INGRESS_PORT: "0",
      INGRESS_OPS_PORT: "0",
      WHATSAPP_APP_SECRET: SECRET,
      WHATSAPP_VERIFY_TOKEN: "verify",
      WHATSAPP_ACCESS_TOKEN: TOKEN,
      WHATSAPP_API_URL: graph.url,
      // Every copy of a duplicated webhook must reach the consumer, whose claim is under test.
      WEBHOOK_RECENT_IDS: "0",
    }),
    logger,
  );
  conversation = await startConversationService(
    loadConversationConfig({ ...env, ...infra.kafka.settings("conversation"), CONVERSATION_PORT: "0" }),
    logger,
  );
  kafka = createKafka({ ...infra.kafka.client, clientId: "it-observer", logger });
});

after(async () => {
  const step = async (name: string, fn: () => Promise<unknown> | undefined) => {
    const t0 = performance.now();
    await fn();
    logger.info(`${name} stopped in ${Math.round(performance.now() - t0)} ms`);
  };
  await step("ingress", () => ingress?.stop());
  await step("conversation", () => conversation?.stop());
  await step("graph", () => graph?.close());
  await step("telemetry", () => telemetry.shutdown());
  await step("infra", () => infra?.stop());
});

let shopperSeq = 0;
function shopper() {
  shopperSeq += 1;
  return {
    waId: `1555${run.replace(/\D/g, "").padEnd(4, "7").slice(0, 4)}${String(shopperSeq).padStart(4, "0")}`,
    phoneNumberId: "PN100",
  };
}

/** Posts a webhook signed with the app secret, or with `signature` (null: no signature header at all). */
async function postWebhook(body: string, signature: string | null = signWebhook(body, SECRET)) {
  return fetch(`${ingress.endpoints.webhook}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(signature ? { "x-hub-signature-256": signature } : {}),
    },
    body,
  });
}

const sendsTo = (waId: string) => graph.sends().filter((r) => (r.body as { to?: string }).to === waId);

/** Sum of the latest offsets of a topic's partitions: how many records it holds. */
async function topicSize(topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

async function duplicates(): Promise<number> {
  const text = await conversation.registry.getSingleMetricAsString("conversation_events_total");
  return [...text.matchAll(/outcome="duplicate"[^}]*\} (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

describe("walking skeleton", () => {
  test("runs against real servers: a Kafka broker, a MongoDB-wire server and Redis", async (t) => {
    const admin = kafka.admin();
    await admin.connect();
    const cluster = await admin.describeCluster();
    await admin.disconnect();
    assert.ok(cluster.brokers.length >= 1 && cluster.clusterId);
    const mongo = new MongoClient(infra.mongo.url);
    const build = await mongo.db("admin").command({ buildInfo: 1 });
    await mongo.close();
    assert.match(String(build.version), /^\d+\.\d+/);
    const redis = new Redis(infra.redis.url);
    const info = await redis.info("server");
    redis.disconnect();
    const redisVersion = /redis_version:(\S+)/.exec(info)?.[1];
    assert.ok(redisVersion);
    t.diagnostic(
      `mode ${infra.mode}: Kafka cluster ${cluster.clusterId} at ${infra.kafka.brokers.join(",")}; ` +
        `MongoDB wire ${build.version}${build.ferretdb ? ` (FerretDB ${build.ferretdb.version})` : ""} at ${infra.mongo.url}; ` +
        `Redis ${redisVersion} at ${infra.redis.url}`,
    );
  });

  test("a text webhook gets the greeting that asks for the recipient's name, through the Graph API", async () => {
    const who = shopper();
    const body = JSON.stringify(
      textWebhook("I want a gift", { ...who, wamid: `wamid.${run}.hello`, profileName: "Ana" }),
    );
    const response = await postWebhook(body);
    assert.equal(response.status, 200);
    const [send] = await eventually(
      "the greeting to reach the Graph API",
      () => sendsTo(who.waId).length === 1 && sendsTo(who.waId),
    );
    assert.equal(send?.path, `/${who.phoneNumberId}/messages`);
    assert.equal(send?.headers.authorization, `Bearer ${TOKEN}`);
    const { biz_opaque_callback_data: sealed, ...sent } = (send?.body ?? {}) as Record<string, unknown>;
    // The outbound id, sealed, which statuses echo: no id of the shopper's in clear.
    assert.match(String(sealed), /^[A-Za-z0-9_-]{40,}$/);
    assert.ok(!String(sealed).includes(who.waId));
    assert.deepEqual(sent, {
      messaging_product: "whatsapp",
      recipient_type: "individual",
      to: who.waId,
      type: "text",
      text: {
        body: "Hi Ana! 🎁 I design one-of-a-kind gifts. Who is this gift for? Send me their name.",
        preview_url: false,
      },
    });
  });

  test("the conversation is stored with the event applied and its reply published once", async () => {
    const who = shopper();
    const wamid = `wamid.${run}.stored`;
    const body = JSON.stringify(textWebhook("I want a gift", { ...who, wamid }));
    assert.equal((await postWebhook(body)).status, 200);
    await eventually("the greeting", () => sendsTo(who.waId).length === 1);
    const mongo = new MongoClient(infra.mongo.url);
    try {
      const db = mongo.db(`it_${run}`);
      const id = `${who.phoneNumberId}:${who.waId}`;
      const conversation = await eventually("the conversation", () =>
        db.collection("conversation_conversations").findOne({ _id: id as never }),
      );
      // The outbox keeps what this version produced; the next version leaves it out.
      assert.deepEqual(
        conversation.outbox.map((entry: { id: string }) => entry.id),
        [`${wamid}:0`],
      );
      assert.equal(conversation.conversation.state, "awaiting_recipient");
      assert.deepEqual(conversation.appliedEventIds, [wamid]);
      // The first message's claim is the conversation's own insert (unique `_id`).
      assert.equal(conversation.firstEventId, wamid);
      const claimed = await db.collection("ingress_outbound_sends").findOne({ _id: `${wamid}:0` as never });
      assert.equal(claimed?.conversationId, id);
      const sent = await db.collection("ingress_outbound_sent").findOne({ _id: `${wamid}:0` as never });
      assert.match(String(sent?.wamid), /^wamid\.fake\./);
    } finally {
      await mongo.close();
    }
  });

  test("the same webhook delivered twice, and three more times concurrently, gives exactly one reply", async () => {
    const who = shopper();
    const body = JSON.stringify(textWebhook("hello", { ...who, wamid: `wamid.${run}.dup` }));
    const before = await duplicates();
    assert.equal((await postWebhook(body)).status, 200);
    assert.equal((await postWebhook(body)).status, 200);
    const concurrent = await Promise.all([postWebhook(body), postWebhook(body), postWebhook(body)]);
    assert.deepEqual(
      concurrent.map((r) => r.status),
      [200, 200, 200],
    );
    // All five copies reached Kafka; four were recognised as duplicates by the consumer's claim.
    await eventually("four duplicates to be recognised", async () => (await duplicates()) - before === 4);
    await eventually("the reply", () => sendsTo(who.waId).length >= 1);
    // The dispatcher works in order per conversation, so after the duplicates are handled any
    // second reply would already be on its way; give it time to show up if it exists.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(sendsTo(who.waId).length, 1);
  });

  test("a forged signature gets 401 and nothing reaches Kafka", async () => {
    const who = shopper();
    const body = JSON.stringify(textWebhook("forged", { ...who, wamid: `wamid.${run}.forged` }));
    const sizeBefore = await topicSize(topics.inbound);
    const dlqBefore = await topicSize(`${topics.inbound}.dlq`);
    for (const signature of [signWebhook(body, "not-the-secret"), null, "sha256=00"]) {
      assert.equal((await postWebhook(body, signature)).status, 401);
    }
    assert.equal(await topicSize(topics.inbound), sizeBefore);
    assert.equal(await topicSize(`${topics.inbound}.dlq`), dlqBefore);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(sendsTo(who.waId).length, 0);
  });

  test("one trace id at ingress, in the Kafka headers, in the conversation service and on the outbound call", async () => {
    const who = shopper();
    const wamid = `wamid.${run}.trace`;
    const body = JSON.stringify(textWebhook("trace me", { ...who, wamid }));
    assert.equal((await postWebhook(body)).status, 200);
    const [send] = await eventually("the reply", () => sendsTo(who.waId).length === 1 && sendsTo(who.waId));
    const traceparent = String(send?.headers.traceparent ?? "");
    assert.match(traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    const traceId = traceparent.split("-")[1];

    // The dispatcher's span ends after the Graph API answered and the send was recorded.
    const spans = await eventually("the dispatcher's span to end", async () => {
      await processor.forceFlush();
      const inTrace = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      return inTrace.some((s) => s.name === `${topics.outbound} process`) && inTrace;
    });
    const names = spans.map((s) => s.name);
    assert.ok(names.includes("POST /webhook"), `ingress span in ${names}`);
    assert.ok(names.includes(`${topics.inbound} process`), `conversation consumer span in ${names}`);
    assert.ok(names.includes(`${topics.outbound} process`), `dispatcher consumer span in ${names}`);
    assert.ok(names.includes("POST /{phone_number_id}/messages"), `Graph API client span in ${names}`);
    // The trace starts at the webhook request. In this process the test's own fetch is traced too
    // (undici), and the HTTP and Fastify instrumentations add their spans around the route's, so
    // the root is the webhook span or one of the spans of that same request above it: walking up
    // from the webhook span reaches the trace's one root without passing a Kafka hop.
    const roots = spans.filter((s) => s.parentSpanContext === undefined);
    assert.equal(roots.length, 1, `one root in ${names}`);
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const path: string[] = [];
    let at = spans.find((s) => s.name === "POST /webhook");
    while (at?.parentSpanContext) {
      at = byId.get(at.parentSpanContext.spanId);
      if (at) path.push(at.name);
    }
    assert.equal(at, roots[0], `the webhook span descends from the root: ${path.join(" <- ")}`);
    assert.ok(
      path.every((name) => !name.includes(" process") && !name.includes(" publish")),
      `nothing but the webhook request above it: ${path.join(" <- ")}`,
    );

    // The inbound record itself carries the same trace context in its headers.
    const consumer = kafka.consumer({ groupId: `it-${run}-observer` });
    await consumer.connect();
    await consumer.subscribe({ topic: topics.inbound, fromBeginning: true });
    const headers = await new Promise<Record<string, string>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("inbound record not found")), 20_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          const record = headersToRecord(message.headers);
          if (message.value?.includes(Buffer.from(wamid))) {
            clearTimeout(timer);
            resolve(record);
          }
        },
      });
    });
    await consumer.disconnect();
    assert.equal(headers.traceparent?.split("-")[1], traceId);
    assert.equal(headers["content-type"], "application/x-protobuf; messageType=inbound.v1.InboundEvent");
  });
});

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { loadConversationConfig } from "@taituri/conversation-service/config";
import { startConversationService } from "@taituri/conversation-service/service";
import { type Infra, type RestartableKafka, startInfra, startRestartableKafka } from "@taituri/devenv";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import type { RunningService } from "@taituri/service";
import { eventually, type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { Kafka, logLevel } from "kafkajs";
import { MongoClient } from "mongodb";

/**
 * A Kafka outage, on real servers: while the broker is down the webhook answers 503 (so Meta
 * retries) within the publish timeout, and never 200; once the broker is back, Meta's retry of that
 * webhook is stored and answered once, and the services go on working without a restart.
 *
 * The broker is this file's own (startRestartableKafka), even when KAFKA_BROKERS names a shared one:
 * someone else's broker is not ours to stop. MongoDB comes from startInfra as usual.
 */
const SECRET = "outage-app-secret";
// Set explicitly: the 503 bound below is derived from it.
const PUBLISH_TIMEOUT_MS = 1500;
const run = runId();
const prefix = `it-outage-${run}.`;
const topics = topicNames(prefix);
const dbName = `it_outage_${run}`;
const logger = createLogger({ service: "it-outage", level: process.env.TEST_LOG_LEVEL ?? "silent" });

let kafka: RestartableKafka;
let infra: Infra;
let graph: FakeGraphApi;
let ingress: RunningService;
let conversation: RunningService;
let mongo: MongoClient;

before(async () => {
  kafka = await startRestartableKafka();
  // Our broker stands in for KAFKA_BROKERS, so startInfra starts only what is still missing. It is a
  // plain one (no login, no ACLs): TAITURI_KAFKA_AUTH, about the shared broker, does not apply to it,
  // so infra.kafka's settings are its address alone and authorize() has nothing to do.
  infra = await startInfra({ env: { ...process.env, KAFKA_BROKERS: kafka.brokers.join(",") } });
  graph = await startFakeGraphApi();
  mongo = new MongoClient(infra.mongo.url);
  await infra.kafka.authorize(prefix);
  const env = {
    MONGO_URL: infra.mongo.url,
    MONGO_DB: dbName,
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
      WHATSAPP_ACCESS_TOKEN: "token",
      WHATSAPP_API_URL: graph.url,
      WEBHOOK_PUBLISH_TIMEOUT_MS: String(PUBLISH_TIMEOUT_MS),
    }),
    logger,
  );
  conversation = await startConversationService(
    loadConversationConfig({ ...env, ...infra.kafka.settings("conversation"), CONVERSATION_PORT: "0" }),
    logger,
  );
});

after(async () => {
  // A failed test may leave the broker down: bring it back, so the services' clients disconnect at
  // once instead of retrying a broker that is not there.
  if (kafka && !kafka.isRunning()) await kafka.start().catch(() => {});
  await ingress?.stop();
  await conversation?.stop();
  await graph?.close();
  await mongo?.close();
  await infra?.stop();
  await kafka?.close();
});

let shopperSeq = 0;
function shopper() {
  shopperSeq += 1;
  return {
    waId: `1666${run.replace(/\D/g, "").padEnd(4, "3").slice(0, 4)}${shopperSeq}`,
    phoneNumberId: "PN200",
  };
}

/** Posts a webhook; every request is bounded, so a hung ingress fails the test instead of stalling it. */
async function postWebhook(body: string, signature = signWebhook(body, SECRET)) {
  const t0 = performance.now();
  const response = await fetch(ingress.endpoints.webhook ?? "", {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signature },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  await response.arrayBuffer();
  return { status: response.status, ms: Math.round(performance.now() - t0) };
}

const sendsTo = (waId: string) => graph.sends().filter((r) => (r.body as { to?: string }).to === waId);

async function duplicates(): Promise<number> {
  const text = await conversation.registry.getSingleMetricAsString("conversation_events_total");
  return [...text.matchAll(/outcome="duplicate"[^}]*\} (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/**
 * How many records of the inbound topic carry `wamid`: reads every partition from the beginning
 * up to its current end, with a group of its own so the services' offsets are untouched.
 */
async function recordsCarrying(wamid: string): Promise<number> {
  const client = new Kafka({
    ...infra.kafka.client,
    clientId: "it-outage-observer",
    logLevel: logLevel.NOTHING,
  });
  const admin = client.admin();
  await admin.connect();
  const ends = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topics.inbound)) ends.set(p.partition, BigInt(p.high));
  } finally {
    await admin.disconnect();
  }
  const consumer = client.consumer({
    groupId: `it-outage-${run}-observer-${randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  const needle = Buffer.from(wamid);
  let count = 0;
  const done = () => [...ends.values()].every((end) => end === 0n);
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: topics.inbound, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("reading the inbound topic took over 20 s")), 20_000);
      const finish = () => {
        clearTimeout(timer);
        resolve();
      };
      if (done()) finish();
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          if (message.value?.includes(needle)) count += 1;
          const end = ends.get(partition) ?? 0n;
          if (BigInt(message.offset) + 1n >= end) ends.set(partition, 0n);
          if (done()) finish();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return count;
}

describe("a Kafka outage", { timeout: 120_000 }, () => {
  test("while Kafka runs, a signed webhook gets 200 and the shopper a reply", async () => {
    const who = shopper();
    const body = JSON.stringify(textWebhook("hello", { ...who, wamid: `wamid.${run}.before` }));
    assert.equal((await postWebhook(body)).status, 200);
    await eventually("the reply before the outage", () => sendsTo(who.waId).length === 1, 30_000);
  });

  const during = shopper();
  const wamid = `wamid.${run}.during`;
  const body = JSON.stringify(textWebhook("I want a gift", { ...during, wamid, profileName: "Ana" }));
  /** Every signed delivery of `body`, in order: what Meta would have sent. */
  const deliveries: { status: number; ms: number; brokerUp: boolean }[] = [];

  test("with Kafka stopped, a signed webhook gets 503 within the publish timeout; a forged one still 401", async (t) => {
    await kafka.stop();
    const answer = await postWebhook(body);
    deliveries.push({ ...answer, brokerUp: false });
    assert.equal(answer.status, 503);
    // The publish timeout plus generous slack for a loaded 2-core machine; never Meta's own timeout.
    assert.ok(answer.ms < 5_000, `503 took ${answer.ms} ms`);
    const forged = await postWebhook(body, signWebhook(body, "not-the-secret"));
    assert.equal(forged.status, 401);
    t.diagnostic(
      `503 after ${answer.ms} ms (publish timeout ${PUBLISH_TIMEOUT_MS} ms); forged: 401 after ${forged.ms} ms`,
    );
  });

  let brokerBackAt = 0;
  let duplicatesBefore = 0;
  let records = 0;

  test("with Kafka back, Meta's retry of that webhook gets 200 and is in the inbound topic", async (t) => {
    // Nothing has reached the conversation service since the broker went down.
    duplicatesBefore = await duplicates();
    const t0 = performance.now();
    await kafka.start();
    brokerBackAt = performance.now();
    // Meta retries a refused webhook with backoff; here every second, for at most 20 s.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const answer = await postWebhook(body);
      deliveries.push({ ...answer, brokerUp: true });
      if (answer.status === 200) break;
      assert.equal(answer.status, 503, "a retry is either stored (200) or refused for Meta to retry (503)");
      assert.ok(
        Date.now() < deadline,
        `no 200 within 20 s of the broker's return: ${JSON.stringify(deliveries)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    const storedMs = Math.round(performance.now() - brokerBackAt);
    // A 200 means acks=all: the record is there now. But a send answered 503 may still reach the
    // broker afterwards (the webhook stops waiting, the producer does not stop sending), so the
    // topic may hold one copy per signed delivery, never more. Observed here: one record every run.
    // The producer gives the 503'd send up after its own retries (kafkajs: five connection attempts,
    // about 3 s), before the broker is back, and the first retry after the restart gets 200 in tens
    // of milliseconds. A second copy would not be a bug: the claim checked below makes it harmless.
    records = await recordsCarrying(wamid);
    assert.ok(records >= 1, "the event is in the inbound topic");
    assert.ok(records <= deliveries.length, `${records} records from ${deliveries.length} deliveries`);
    t.diagnostic(
      `broker ready again in ${Math.round(brokerBackAt - t0)} ms; 200 ${storedMs} ms later; ` +
        `deliveries ${JSON.stringify(deliveries)}; records in the inbound topic: ${records}`,
    );
  });

  test("the conversation applies that event once: one claim, one reply", async (t) => {
    assert.ok(records >= 1, "the previous test stored the event");
    // The consumers come back after the broker on their own, but slowly: an outage of more than a
    // few seconds exhausts kafkajs's retries, the consumer restarts as a *new* group member, and
    // the coordinator holds the group's rebalance until the old member's session (10 s in
    // @taituri/kafka's consumer) expires. Observed: the reply ~10 s after the broker's return.
    await eventually("the reply after the outage", () => sendsTo(during.waId).length >= 1, 30_000);
    const repliedMs = Math.round(performance.now() - brokerBackAt);
    // Once every extra copy is recognised as a duplicate, a second reply would already be on its way.
    await eventually(
      `${records - 1} extra copies recognised as duplicates`,
      async () => (await duplicates()) - duplicatesBefore >= records - 1,
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(sendsTo(during.waId).length, 1, "exactly one reply");
    const db = mongo.db(dbName);
    const conversationId = `${during.phoneNumberId}:${during.waId}`;
    const stored = await db
      .collection("conversation_conversations")
      .findOne({ _id: conversationId as never });
    assert.equal(stored?.firstEventId, wamid, "the conversation was created by that event");
    assert.deepEqual(
      ((stored?.appliedEventIds ?? []) as string[]).filter((id) => id === wamid),
      [wamid],
    );
    t.diagnostic(`reply ${repliedMs} ms after the broker was ready again`);
  });

  test("after the outage, a new shopper's message gets its reply", async () => {
    const who = shopper();
    const body = JSON.stringify(textWebhook("hi again", { ...who, wamid: `wamid.${run}.after` }));
    assert.equal((await postWebhook(body)).status, 200);
    await eventually("the reply after recovery", () => sendsTo(who.waId).length === 1, 30_000);
  });
});

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { createKafka, deadLetterTopic, EventProducer, type TopicNames, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { loadPaymentConfig } from "@taituri/payment-service/config";
import { LocalProvider } from "@taituri/payment-service/local-provider";
import { startPaymentService } from "@taituri/payment-service/service";
import { StripeProvider } from "@taituri/payment-service/stripe-provider";
import { payment } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { type Infra, startInfra } from "@taituri/testing";
import { eventually, freePort, readTopic } from "@taituri/testing/harness";
import { ensureGoTool } from "@taituri/testing/tools";
import type { Consumer, Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";
import Stripe from "stripe";

/**
 * The payment service on the real servers: payment requests in over Kafka, payment events out,
 * orders in MongoDB, the local checkout page and its signed webhooks over HTTP, tokens from a
 * real OIDC issuer, and the Stripe provider against stripe-mock.
 */
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const run = randomUUID().slice(0, 8);
const LOCAL_SECRET = "payment-it-local-webhook-secret";
const STRIPE_WEBHOOK_SECRET = "whsec_payment_it";
const STRIPE_MOCK = { name: "stripe-mock", module: "github.com/stripe/stripe-mock", version: "v0.203.0" };

let infra: Infra;
let issuer: LocalIssuer;
let mongo: MongoClient;
let kafka: Kafka;
let producer: EventProducer;
let stripeMock: ChildProcess | undefined;
let stripeMockUrl = "";

/** One payment service with its own topics and database, and what it publishes. */
interface Instance {
  service: RunningService;
  url: string;
  topics: TopicNames;
  db: Db;
  events: payment.PaymentEvent[];
  consumer: Consumer;
}
const instances: Instance[] = [];
let local: Instance;
let shortLived: Instance;
let stripe: Instance;

async function startInstance(name: string, env: Record<string, string>): Promise<Instance> {
  const prefix = `payment-${name}-${run}.`;
  const dbName = `payment_${name}_${run}`;
  const port = await freePort();
  const service = await startPaymentService(
    loadPaymentConfig({
      KAFKA_BROKERS: infra.kafka.brokers.join(","),
      MONGO_URL: infra.mongo.url,
      MONGO_DB: dbName,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_PARTITIONS: "2",
      PAYMENT_PORT: String(port),
      PAYMENT_PUBLIC_URL: `http://127.0.0.1:${port}`,
      PAYMENT_LOCAL_WEBHOOK_SECRET: LOCAL_SECRET,
      PAYMENT_SWEEP_MS: "200",
      OIDC_ISSUER_URL: issuer.url,
      ...env,
    }),
    logger,
  );
  const topics = topicNames(prefix);
  const events: payment.PaymentEvent[] = [];
  const consumer = kafka.consumer({ groupId: `it-${name}-${run}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: topics.paymentEvents, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      events.push(payment.PaymentEvent.decode(message.value ?? Buffer.alloc(0)));
    },
  });
  const instance = {
    service,
    url: `http://127.0.0.1:${port}`,
    topics,
    db: mongo.db(dbName),
    events,
    consumer,
  };
  instances.push(instance);
  return instance;
}

before(async () => {
  infra = await startInfra();
  issuer = await startLocalIssuer();
  mongo = new MongoClient(infra.mongo.url);
  kafka = createKafka({ brokers: infra.kafka.brokers, clientId: "payment-it", logger });
  producer = new EventProducer(kafka);
  await producer.connect();
  const binary = await ensureGoTool(STRIPE_MOCK);
  const mockPort = await freePort();
  stripeMock = spawn(binary, ["-http-addr", `127.0.0.1:${mockPort}`], { stdio: "ignore" });
  stripeMockUrl = `http://127.0.0.1:${mockPort}`;
  await eventually(
    "stripe-mock to answer",
    async () => (await fetch(`${stripeMockUrl}/v1/charges`)).status > 0,
  );
  // One after another: services creating the same broker's topics at once trip over each other.
  local = await startInstance("local", {});
  shortLived = await startInstance("short", { PAYMENT_SESSION_TTL_MS: "1500" });
  stripe = await startInstance("stripe", {
    PAYMENT_PROVIDER: "stripe",
    STRIPE_SECRET_KEY: "sk_test_123",
    STRIPE_WEBHOOK_SECRET,
    STRIPE_API_URL: stripeMockUrl,
  });
});

after(async () => {
  for (const i of instances) {
    await i.consumer.disconnect();
    await i.service.stop();
  }
  stripeMock?.kill();
  await producer?.disconnect();
  await mongo?.close();
  await issuer?.close();
  await infra?.stop();
});

let orders = 0;
/** A request as the conversation builds it, for a new order unless `orderId` is given. */
function request(over: Partial<payment.PaymentRequest> = {}): payment.PaymentRequest {
  orders += 1;
  const conversationId = `PNP:3460000${String(orders).padStart(4, "0")}`;
  return {
    orderId: `${conversationId}/j1/r1/d2`,
    conversationId,
    shopId: "demo-shop",
    designId: "d2",
    imageId: `${conversationId}/j1/r1/d2`,
    productId: "mug-11oz",
    amount: 1990,
    currency: "EUR",
    ...over,
  };
}

async function buy(i: Instance, r: payment.PaymentRequest): Promise<void> {
  await producer.send(i.topics.paymentRequests, [
    { key: r.conversationId, value: payment.PaymentRequest.encode(r).finish() },
  ]);
}

const eventsOf = (i: Instance, orderId: string) => i.events.filter((e) => e.orderId === orderId);
const outcomes = (i: Instance, orderId: string) => eventsOf(i, orderId).map((e) => e.outcome?.$case);
const links = (i: Instance, orderId: string) =>
  eventsOf(i, orderId).flatMap((e) => (e.outcome?.$case === "linkCreated" ? [e.outcome.value.url] : []));
const orderDoc = (i: Instance, orderId: string) =>
  i.db.collection("payment_orders").findOne({ _id: orderId as never });
const sessionsOf = (i: Instance, orderId: string) =>
  i.db.collection("payment_sessions").find({ orderId }).toArray();

async function linkFor(i: Instance, orderId: string, n = 1): Promise<string> {
  const got = await eventually(
    `link ${n} for ${orderId}`,
    () => links(i, orderId).length >= n && links(i, orderId),
  );
  return got[n - 1] ?? "";
}

const sessionIdOf = (url: string) => url.split("/checkout/")[1] ?? "";
const localProvider = () =>
  new LocalProvider({ secret: LOCAL_SECRET, publicUrl: local.url, toleranceSeconds: 300 });

async function deliver(i: Instance, body: string, signature: string, provider = "local"): Promise<number> {
  const header = provider === "local" ? "taituri-signature" : "stripe-signature";
  const response = await fetch(`${i.url}/payments/webhooks/${provider}`, {
    method: "POST",
    headers: { "content-type": "application/json", [header]: signature },
    body,
  });
  await response.arrayBuffer();
  return response.status;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("payment requests", () => {
  test('two "buy" requests for one order give one session and the same link', async () => {
    const r = request();
    await new ImageStore(local.db).put(r.imageId, {
      bytes: Buffer.from("png bytes of design 2"),
      contentType: "image/png",
      filename: "d2.png",
    });
    await buy(local, r);
    await buy(local, r);
    await eventually("two link events", () => links(local, r.orderId).length === 2);
    const [first, second] = links(local, r.orderId);
    assert.equal(first, second);
    assert.match(first ?? "", new RegExp(`^${local.url}/checkout/lcs_`));
    assert.equal((await sessionsOf(local, r.orderId)).length, 1);
    const order = await orderDoc(local, r.orderId);
    assert.equal(order?.state, "link_sent");
    assert.equal(order?.attempt, 1);
    assert.equal(order?.amount, 1990);

    // The checkout page: the order, the price, the chosen design, Pay and Cancel.
    const page = await (await fetch(first ?? "")).text();
    assert.match(page, /ceramic mug/);
    assert.match(page, /€19\.90/);
    assert.match(page, /<button type="submit" id="pay">Pay<\/button>/);
    assert.match(page, /<button type="submit" id="cancel">Cancel<\/button>/);
    const image = await fetch(`${first}/image`);
    assert.equal(image.headers.get("content-type"), "image/png");
    assert.equal(Buffer.from(await image.arrayBuffer()).toString(), "png bytes of design 2");
  });

  test("an amount that differs from the catalog is rejected: failed event, dead letter, no order", async () => {
    const r = request({ amount: 1 });
    await buy(local, r);
    await eventually("a failed event", () => outcomes(local, r.orderId).includes("failed"));
    const failed = eventsOf(local, r.orderId)[0]?.outcome;
    assert.equal(failed?.$case, "failed");
    assert.match(
      failed?.$case === "failed" ? failed.value.reason : "",
      /rejected: amount 1 EUR differs from the catalog's 1990 EUR/,
    );
    const dead = await readTopic(kafka, deadLetterTopic(local.topics.paymentRequests), (records) =>
      records.some((x) => x.key === r.conversationId),
    );
    const letter = dead.find((x) => x.key === r.conversationId);
    assert.match(letter?.headers["dlq-error"] ?? "", /differs from the catalog/);
    assert.equal(await orderDoc(local, r.orderId), null);
    assert.equal((await sessionsOf(local, r.orderId)).length, 0);
    assert.equal(links(local, r.orderId).length, 0);
  });
});

describe("provider events", () => {
  test("the same event delivered 3 times, also concurrently: paid once, one succeeded", async () => {
    const r = request();
    await buy(local, r);
    const sessionId = sessionIdOf(await linkFor(local, r.orderId));
    const { body, signature } = localProvider().signedEvent("checkout.session.completed", {
      id: sessionId,
      orderId: r.orderId,
    });
    const statuses = await Promise.all([1, 2, 3].map(() => deliver(local, body, signature)));
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.equal(await deliver(local, body, signature), 200, "a later redelivery too");
    await eventually("succeeded", () => outcomes(local, r.orderId).includes("succeeded"));
    await pause(1500);
    assert.deepEqual(outcomes(local, r.orderId), ["linkCreated", "succeeded"]);
    const order = await orderDoc(local, r.orderId);
    assert.equal(order?.state, "paid");
    assert.equal(order?.paidSessionId, sessionId);
    assert.deepEqual(
      order?.history.map((h: { state: string }) => h.state),
      ["created", "link_sent", "paid"],
    );
    assert.equal(
      await local.db.collection("payment_provider_events").countDocuments({ orderId: r.orderId }),
      1,
    );
    // Asked again after paying: "succeeded" restated, no new session, nothing charged.
    await buy(local, r);
    await eventually("succeeded restated", () => outcomes(local, r.orderId).length === 3);
    assert.deepEqual(outcomes(local, r.orderId), ["linkCreated", "succeeded", "succeeded"]);
    assert.equal((await sessionsOf(local, r.orderId)).length, 1);
  });

  test("a forged, stale or missing signature is answered 400 and changes nothing", async () => {
    const r = request();
    await buy(local, r);
    const sessionId = sessionIdOf(await linkFor(local, r.orderId));
    const session = { id: sessionId, orderId: r.orderId };
    const forged = new LocalProvider({
      secret: "not-the-secret-at-all",
      publicUrl: local.url,
      toleranceSeconds: 300,
    });
    const a = forged.signedEvent("checkout.session.completed", session);
    assert.equal(await deliver(local, a.body, a.signature), 400);
    const stale = localProvider().signedEvent(
      "checkout.session.completed",
      session,
      Math.floor(Date.now() / 1000) - 600,
    );
    assert.equal(await deliver(local, stale.body, stale.signature), 400);
    const good = localProvider().signedEvent("checkout.session.completed", session);
    assert.equal(
      await deliver(local, good.body.replace('"paid"', '"paid" '), good.signature),
      400,
      "body changed",
    );
    assert.equal(await deliver(local, good.body, ""), 400);
    await pause(500);
    const order = await orderDoc(local, r.orderId);
    assert.equal(order?.state, "link_sent");
    assert.equal(
      await local.db.collection("payment_provider_events").countDocuments({ orderId: r.orderId }),
      0,
    );
    assert.deepEqual(outcomes(local, r.orderId), ["linkCreated"]);
    const metrics = await (await fetch(`${local.url}/metrics`)).text();
    assert.match(
      metrics,
      /payment_webhooks_total\{provider="local",outcome="bad_signature",service="payment"\} [4-9]/,
    );
  });

  test("Pay and Cancel at the same moment: one wins, and the one event sent agrees with the order", async () => {
    for (let trial = 0; trial < 3; trial++) {
      const r = request();
      await buy(local, r);
      const link = await linkFor(local, r.orderId);
      await Promise.all([
        fetch(`${link}/pay`, { method: "POST" }),
        fetch(`${link}/cancel`, { method: "POST" }),
      ]);
      await eventually("an outcome", () => outcomes(local, r.orderId).length >= 2);
      await pause(800);
      const state = (await orderDoc(local, r.orderId))?.state;
      assert.ok(state === "paid" || state === "expired", String(state));
      assert.deepEqual(outcomes(local, r.orderId), [
        "linkCreated",
        state === "paid" ? "succeeded" : "expired",
      ]);
    }
  });

  test("the checkout page's Pay, clicked twice, pays once through the signed webhook", async () => {
    const r = request();
    await buy(local, r);
    const link = await linkFor(local, r.orderId);
    const [one, two] = await Promise.all([
      fetch(`${link}/pay`, { method: "POST" }),
      fetch(`${link}/pay`, { method: "POST" }),
    ]);
    const pages = [await one.text(), await two.text()];
    assert.ok(
      pages.every((p) => /Payment received/.test(p)),
      pages.join("\n"),
    );
    await eventually("succeeded", () => outcomes(local, r.orderId).includes("succeeded"));
    await pause(1000);
    assert.deepEqual(outcomes(local, r.orderId), ["linkCreated", "succeeded"]);
    assert.match(await (await fetch(link)).text(), /Payment received/);
  });
});

describe("expiry", () => {
  test("an expired session is retried with a new link, and the order is charged once", async () => {
    const r = request();
    await buy(shortLived, r);
    const first = await linkFor(shortLived, r.orderId);
    await eventually("expired", () => outcomes(shortLived, r.orderId).includes("expired"), 10_000);
    assert.equal((await orderDoc(shortLived, r.orderId))?.state, "expired");
    // The old link can no longer be paid.
    const late = await fetch(`${first}/pay`, { method: "POST" });
    assert.equal(late.status, 409);
    assert.match(await late.text(), /expired or was cancelled\. Nothing was charged/);
    assert.equal((await orderDoc(shortLived, r.orderId))?.state, "expired");

    // "Buy" again: a new session for the same order.
    await buy(shortLived, r);
    const second = await linkFor(shortLived, r.orderId, 2);
    assert.notEqual(second, first);
    const paid = await fetch(`${second}/pay`, { method: "POST" });
    assert.match(await paid.text(), /Payment received/);
    await eventually("succeeded", () => outcomes(shortLived, r.orderId).includes("succeeded"));
    const order = await orderDoc(shortLived, r.orderId);
    assert.equal(order?.state, "paid");
    assert.equal(order?.attempt, 2);
    assert.equal(order?.paidSessionId, sessionIdOf(second));
    assert.equal((await sessionsOf(shortLived, r.orderId)).length, 2);
    // Paid before its expiry: the sweeper leaves it alone.
    await pause(2500);
    assert.deepEqual(outcomes(shortLived, r.orderId), ["linkCreated", "expired", "linkCreated", "succeeded"]);
    assert.equal((await orderDoc(shortLived, r.orderId))?.state, "paid");
  });

  test("Cancel on the checkout page ends the session; the next buy gets a new link", async () => {
    const r = request();
    await buy(local, r);
    const first = await linkFor(local, r.orderId);
    assert.match(await (await fetch(`${first}/cancel`, { method: "POST" })).text(), /Nothing was charged/);
    await eventually("expired", () => outcomes(local, r.orderId).includes("expired"));
    await buy(local, r);
    assert.notEqual(await linkFor(local, r.orderId, 2), first);
  });
});

describe("internal endpoints", () => {
  test("order lookup and refund need an OIDC token for the payment audience", async () => {
    const r = request();
    await buy(local, r);
    const link = await linkFor(local, r.orderId);
    const url = `${local.url}/internal/orders/${encodeURIComponent(r.orderId)}`;
    assert.equal((await fetch(url)).status, 401);
    const other = await issuer.sign({ sub: "ops", aud: "limiter" });
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${other}` } })).status, 401);
    const token = await issuer.sign({ sub: "ops", aud: "payment" });
    const auth = { authorization: `Bearer ${token}` };
    const found = (await (await fetch(url, { headers: auth })).json()) as { state: string; link: string };
    assert.equal(found.state, "link_sent");
    assert.equal(found.link, link);
    assert.equal((await fetch(`${url}/refund`, { method: "POST", headers: auth })).status, 409);
    await fetch(`${link}/pay`, { method: "POST" });
    const refunded = await fetch(`${url}/refund`, { method: "POST", headers: auth });
    assert.equal(refunded.status, 200);
    assert.equal(((await refunded.json()) as { state: string }).state, "refunded");
    assert.equal((await fetch(`${url}/refund`, { method: "POST", headers: auth })).status, 200, "idempotent");
    assert.equal((await fetch(`${local.url}/internal/orders/nope`, { headers: auth })).status, 404);
    assert.equal((await fetch(`${url}/refund`, { method: "POST" })).status, 401);
  });

  test("metrics: orders by state, conversion, provider latency", async () => {
    const metrics = await (await fetch(`${local.url}/metrics`)).text();
    assert.match(metrics, /payment_orders\{state="paid",service="payment"\} [1-9]/);
    assert.match(metrics, /payment_link_conversion_ratio\{service="payment"\} 0\.\d+/);
    assert.match(
      metrics,
      /payment_provider_request_seconds_count\{service="payment",provider="local",operation="create_session",result="ok"\} [1-9]/,
    );
    assert.match(metrics, /payment_requests_total\{outcome="rejected",service="payment"\} 1/);
  });
});

describe("stripe provider (stripe-mock)", () => {
  test("a Checkout Session is created with the order id as idempotency key and in the metadata", async () => {
    const provider = new StripeProvider({
      secretKey: "sk_test_123",
      webhookSecret: STRIPE_WEBHOOK_SECRET,
      publicUrl: "http://127.0.0.1:3003",
      toleranceSeconds: 300,
      timeoutMs: 5000,
      apiUrl: stripeMockUrl,
    });
    const sent: { idempotency_key?: string; path?: string }[] = [];
    provider.stripe.on("request", (e: { idempotency_key?: string; path?: string }) => sent.push(e));
    const base = {
      orderId: "PNP:1/j1/r1/d1",
      conversationId: "PNP:1",
      amount: 1990,
      currency: "EUR",
      productName: "ceramic mug",
      expiresAt: new Date(Date.now() + 3600_000),
    };
    const first = await provider.createSession({ ...base, attempt: 1, idempotencyKey: "PNP:1/j1/r1/d1" });
    assert.match(first.id, /^cs_/);
    assert.match(first.url, /^https:\/\//);
    await provider.createSession({ ...base, attempt: 2, idempotencyKey: "PNP:1/j1/r1/d1#2" });
    assert.deepEqual(
      sent.map((e) => [e.path, e.idempotency_key]),
      [
        ["/v1/checkout/sessions", "PNP:1/j1/r1/d1"],
        ["/v1/checkout/sessions", "PNP:1/j1/r1/d1#2"],
      ],
    );
  });

  test("a buy through the stripe provider, then a webhook verified with Stripe-Signature", async () => {
    const r = request();
    await buy(stripe, r);
    const link = await linkFor(stripe, r.orderId);
    assert.match(link, /^https:\/\//);
    const [session] = await sessionsOf(stripe, r.orderId);
    assert.ok(session);
    const body = JSON.stringify({
      id: `evt_${randomUUID().replace(/-/g, "")}`,
      object: "event",
      type: "checkout.session.completed",
      data: {
        object: {
          id: session._id,
          object: "checkout.session",
          client_reference_id: r.orderId,
          metadata: { order_id: r.orderId },
          payment_status: "paid",
          payment_intent: "pi_123",
        },
      },
    });
    const webhooks = new Stripe("sk_test_123").webhooks;
    const sign = (secret: string, timestamp = Math.floor(Date.now() / 1000)) =>
      webhooks.generateTestHeaderString({ payload: body, secret, timestamp });
    assert.equal(await deliver(stripe, body, sign("whsec_wrong"), "stripe"), 400);
    assert.equal(
      await deliver(stripe, body, sign(STRIPE_WEBHOOK_SECRET, Math.floor(Date.now() / 1000) - 900), "stripe"),
      400,
    );
    assert.equal((await orderDoc(stripe, r.orderId))?.state, "link_sent");
    assert.equal(await deliver(stripe, body, sign(STRIPE_WEBHOOK_SECRET), "stripe"), 200);
    assert.equal(await deliver(stripe, body, sign(STRIPE_WEBHOOK_SECRET), "stripe"), 200);
    await eventually("succeeded", () => outcomes(stripe, r.orderId).includes("succeeded"));
    const order = await orderDoc(stripe, r.orderId);
    assert.equal(order?.state, "paid");
    assert.equal(order?.paymentRef, "pi_123");
    // The local provider's webhook does not exist on a Stripe deployment.
    assert.equal(await deliver(stripe, body, sign(STRIPE_WEBHOOK_SECRET), "local"), 404);
  });

  test("checkout.session.expired and async_payment_failed end the session", async () => {
    for (const type of ["checkout.session.expired", "checkout.session.async_payment_failed"]) {
      const r = request();
      await buy(stripe, r);
      await linkFor(stripe, r.orderId);
      const [session] = await sessionsOf(stripe, r.orderId);
      const body = JSON.stringify({
        id: `evt_${randomUUID().replace(/-/g, "")}`,
        object: "event",
        type,
        data: { object: { id: session?._id, object: "checkout.session", metadata: { order_id: r.orderId } } },
      });
      const signature = new Stripe("sk_test_123").webhooks.generateTestHeaderString({
        payload: body,
        secret: STRIPE_WEBHOOK_SECRET,
      });
      assert.equal(await deliver(stripe, body, signature, "stripe"), 200);
      const expected = type.endsWith("expired") ? "expired" : "failed";
      await eventually(expected, () => outcomes(stripe, r.orderId).includes(expected));
      assert.equal((await orderDoc(stripe, r.orderId))?.state, expected);
    }
  });
});

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { deadLetterTopic } from "@taituri/kafka";
import { ImageStore } from "@taituri/mongo";
import { LocalProvider } from "@taituri/payment-service/local-provider";
import { PaymentStore } from "@taituri/payment-service/store";
import { StripeProvider } from "@taituri/payment-service/stripe-provider";
import type { payment } from "@taituri/proto";
import { eventually, readTopic } from "@taituri/testing/harness";
import {
  localProvider,
  type PaymentInstance,
  type PaymentWorld,
  paymentRequest,
  STRIPE_WEBHOOK_SECRET,
  sessionIdOf,
  startPaymentWorld,
  stripeEvent,
} from "./payment-harness.ts";

/**
 * The payment service on the real servers: payment requests in over Kafka, payment events out,
 * orders in MongoDB, the local checkout page and its signed webhooks over HTTP, tokens from a
 * real OIDC issuer, and the Stripe provider against stripe-mock. Cancellations and refunds:
 * payment-cancel.test.ts; what reaches the providers: payment-privacy.test.ts.
 */
let world: PaymentWorld;
let local: PaymentInstance;
let shortLived: PaymentInstance;
let stripe: PaymentInstance;

before(async () => {
  world = await startPaymentWorld("main");
  // One after another: services creating the same broker's topics at once trip over each other.
  local = await world.start("local");
  shortLived = await world.start("short", { PAYMENT_SESSION_TTL_MS: "1500" });
  stripe = await world.startStripe("stripe");
});

after(async () => {
  await world?.stop();
});

let conversations = 0;
/** A request for the first order of a new conversation. */
function request(over: Partial<payment.PaymentRequest> = {}): payment.PaymentRequest {
  conversations += 1;
  return paymentRequest(`PNP:3460000${String(conversations).padStart(4, "0")}`, 1, over);
}

const ORDER_NUMBER = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("payment requests", () => {
  test('two "buy" requests for one order give one session, the same link and the same order number', async () => {
    const r = request();
    await new ImageStore(local.db).put(r.imageId, {
      bytes: Buffer.from("png bytes of design 2"),
      contentType: "image/png",
      filename: "d2.png",
    });
    await local.buy(r);
    // Without a content type, as producers wrote requests before CancelOrder shared the topic.
    await local.buy(r, false);
    await eventually("two link events", () => local.links(r.orderId).length === 2);
    const [first, second] = local.links(r.orderId);
    assert.equal(first, second);
    assert.match(first ?? "", new RegExp(`^${local.url}/checkout/lcs_`));
    assert.equal((await local.sessionsOf(r.orderId)).length, 1);
    const order = await local.order(r.orderId);
    assert.equal(order?.state, "link_sent");
    assert.equal(order?.attempt, 1);
    assert.equal(order?.amount, 1990);
    assert.match(order?.number, ORDER_NUMBER);
    assert.deepEqual(
      local.eventsOf(r.orderId).map((e) => e.orderNumber),
      [order?.number, order?.number],
    );

    // The checkout page: the order number, the price, the chosen design, Pay and Cancel.
    const page = await (await fetch(first ?? "")).text();
    assert.match(page, /ceramic mug/);
    assert.match(page, /€19\.90/);
    assert.ok(page.includes(`Order <code>${order?.number}</code>`));
    assert.match(page, /<button type="submit" id="pay">Pay<\/button>/);
    assert.match(page, /<button type="submit" id="cancel">Cancel<\/button>/);
    const image = await fetch(`${first}/image`);
    assert.equal(image.headers.get("content-type"), "image/png");
    assert.equal(Buffer.from(await image.arrayBuffer()).toString(), "png bytes of design 2");
  });

  test("an amount that differs from the catalog is rejected: failed event, dead letter, no order", async () => {
    const r = request({ amount: 1 });
    await local.buy(r);
    await eventually("a failed event", () => local.outcomes(r.orderId).includes("failed"));
    const failed = local.eventsOf(r.orderId)[0];
    assert.equal(failed?.outcome?.$case, "failed");
    assert.match(
      failed?.outcome?.$case === "failed" ? failed.outcome.value.reason : "",
      /rejected: amount 1 EUR differs from the catalog's 1990 EUR/,
    );
    assert.equal(failed?.orderNumber, "", "no order, so no number");
    const dead = await readTopic(world.kafka, deadLetterTopic(local.topics.paymentRequests), (records) =>
      records.some((x) => x.key === r.conversationId),
    );
    const letter = dead.find((x) => x.key === r.conversationId);
    assert.match(letter?.headers["dlq-error"] ?? "", /differs from the catalog/);
    assert.equal(await local.order(r.orderId), null);
    assert.equal((await local.sessionsOf(r.orderId)).length, 0);
    assert.equal(local.links(r.orderId).length, 0);
  });

  test("orders get distinct numbers, unique in payment_orders", async () => {
    const rs = [request(), request(), request()];
    for (const r of rs) await local.buy(r);
    const numbers = await Promise.all(
      rs.map(async (r) => (await local.orderIn(r.orderId, "link_sent")).number),
    );
    assert.equal(new Set(numbers).size, 3);
    const index = (await local.db.collection("payment_orders").indexes()).find((i) => i.name === "number");
    assert.equal(index?.unique, true);
    // The index refuses a second order with a number already taken…
    await assert.rejects(
      local.db.collection("payment_orders").insertOne({ _id: "someone-else" as never, number: numbers[0] }),
      /E11000/,
    );
    // …so the store draws another; the same order asked again keeps its first number.
    const store = new PaymentStore(local.db);
    const draws = [numbers[0] ?? "", numbers[1] ?? "", "ZZZZ-ZZZ0", "ZZZZ-ZZZ1"];
    const fields = {
      _id: `${rs[0]?.conversationId}/o2`,
      conversationId: rs[0]?.conversationId ?? "",
      shopId: "demo-shop",
      productId: "mug-11oz",
      productName: "mug",
      designId: "d9",
      imageId: "i9",
      amount: 1990,
      currency: "EUR",
      provider: "local",
    };
    const created = await store.create(fields, new Date(), () => draws.shift() ?? "");
    const fresh = created.number;
    assert.ok(!numbers.includes(fresh), `drew ${fresh} after ${numbers.slice(0, 2).join(", ")}`);
    assert.equal((await store.create(fields, new Date(), () => "ZZZZ-ZZZ9")).number, fresh);
  });
});

describe("provider events", () => {
  test("the same event delivered 3 times, also concurrently: paid once, one succeeded", async () => {
    const r = request();
    await local.buy(r);
    const sessionId = sessionIdOf(await local.linkFor(r.orderId));
    const { number } = await local.order(r.orderId);
    const { body, signature } = localProvider(local.url).signedEvent("checkout.session.completed", {
      id: sessionId,
      orderNumber: number,
    });
    const statuses = await Promise.all([1, 2, 3].map(() => local.deliver(body, signature)));
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.equal(await local.deliver(body, signature), 200, "a later redelivery too");
    await eventually("succeeded", () => local.outcomes(r.orderId).includes("succeeded"));
    await pause(1500);
    assert.deepEqual(local.outcomes(r.orderId), ["linkCreated", "succeeded"]);
    assert.equal(local.eventsOf(r.orderId)[1]?.orderNumber, number);
    const order = await local.order(r.orderId);
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
    await local.buy(r);
    await eventually("succeeded restated", () => local.outcomes(r.orderId).length === 3);
    assert.deepEqual(local.outcomes(r.orderId), ["linkCreated", "succeeded", "succeeded"]);
    assert.equal((await local.sessionsOf(r.orderId)).length, 1);
  });

  test("a forged, stale or missing signature is answered 400 and changes nothing", async () => {
    const r = request();
    await local.buy(r);
    const sessionId = sessionIdOf(await local.linkFor(r.orderId));
    const session = { id: sessionId, orderNumber: (await local.order(r.orderId)).number };
    const forged = new LocalProvider({
      secret: "not-the-secret-at-all",
      publicUrl: local.url,
      toleranceSeconds: 300,
    });
    const a = forged.signedEvent("checkout.session.completed", session);
    assert.equal(await local.deliver(a.body, a.signature), 400);
    const stale = localProvider(local.url).signedEvent(
      "checkout.session.completed",
      session,
      Math.floor(Date.now() / 1000) - 600,
    );
    assert.equal(await local.deliver(stale.body, stale.signature), 400);
    const good = localProvider(local.url).signedEvent("checkout.session.completed", session);
    assert.equal(
      await local.deliver(good.body.replace('"paid"', '"paid" '), good.signature),
      400,
      "body changed",
    );
    assert.equal(await local.deliver(good.body, ""), 400);
    await pause(500);
    const order = await local.order(r.orderId);
    assert.equal(order?.state, "link_sent");
    assert.equal(await local.db.collection("payment_provider_events").countDocuments({ sessionId }), 0);
    assert.deepEqual(local.outcomes(r.orderId), ["linkCreated"]);
    assert.ok((await local.metric("payment_webhooks_total", { outcome: "bad_signature" })) >= 4);
  });

  test("Pay and Cancel at the same moment: one wins, and the one event sent agrees with the order", async () => {
    for (let trial = 0; trial < 3; trial++) {
      const r = request();
      await local.buy(r);
      const link = await local.linkFor(r.orderId);
      await Promise.all([
        fetch(`${link}/pay`, { method: "POST" }),
        fetch(`${link}/cancel`, { method: "POST" }),
      ]);
      await eventually("an outcome", () => local.outcomes(r.orderId).length >= 2);
      await pause(800);
      const state = (await local.order(r.orderId))?.state;
      assert.ok(state === "paid" || state === "expired", String(state));
      assert.deepEqual(local.outcomes(r.orderId), [
        "linkCreated",
        state === "paid" ? "succeeded" : "expired",
      ]);
    }
  });

  test("the checkout page's Pay, clicked twice, pays once through the signed webhook", async () => {
    const r = request();
    await local.buy(r);
    const link = await local.linkFor(r.orderId);
    const [one, two] = await Promise.all([
      fetch(`${link}/pay`, { method: "POST" }),
      fetch(`${link}/pay`, { method: "POST" }),
    ]);
    const pages = [await one.text(), await two.text()];
    const { number } = await local.order(r.orderId);
    assert.ok(
      pages.every((p) => p.includes(`Payment received, thank you. Your order number is <b>${number}</b>`)),
      pages.join("\n"),
    );
    await eventually("succeeded", () => local.outcomes(r.orderId).includes("succeeded"));
    await pause(1000);
    assert.deepEqual(local.outcomes(r.orderId), ["linkCreated", "succeeded"]);
    assert.match(await (await fetch(link)).text(), /Payment received/);
  });
});

describe("expiry", () => {
  test("an expired session is retried with a new link, and the order is charged once", async () => {
    const r = request();
    await shortLived.buy(r);
    const first = await shortLived.linkFor(r.orderId);
    await eventually("expired", () => shortLived.outcomes(r.orderId).includes("expired"), 10_000);
    assert.equal((await shortLived.order(r.orderId))?.state, "expired");
    // The old link can no longer be paid.
    const late = await fetch(`${first}/pay`, { method: "POST" });
    assert.equal(late.status, 409);
    assert.match(await late.text(), /expired or was cancelled\. Nothing was charged/);
    assert.equal((await shortLived.order(r.orderId))?.state, "expired");

    // "Buy" again: a new session for the same order, under the same number.
    const { number } = await shortLived.order(r.orderId);
    await shortLived.buy(r);
    const second = await shortLived.linkFor(r.orderId, 2);
    assert.notEqual(second, first);
    const paid = await fetch(`${second}/pay`, { method: "POST" });
    assert.match(await paid.text(), /Payment received/);
    await eventually("succeeded", () => shortLived.outcomes(r.orderId).includes("succeeded"));
    const order = await shortLived.order(r.orderId);
    assert.equal(order?.state, "paid");
    assert.equal(order?.number, number);
    assert.equal(order?.attempt, 2);
    assert.equal(order?.paidSessionId, sessionIdOf(second));
    assert.equal((await shortLived.sessionsOf(r.orderId)).length, 2);
    // Paid before its expiry: the sweeper leaves it alone.
    await pause(2500);
    assert.deepEqual(shortLived.outcomes(r.orderId), ["linkCreated", "expired", "linkCreated", "succeeded"]);
    assert.equal((await shortLived.order(r.orderId))?.state, "paid");
  });

  test("Cancel on the checkout page ends the session; the next buy gets a new link", async () => {
    const r = request();
    await local.buy(r);
    const first = await local.linkFor(r.orderId);
    assert.match(await (await fetch(`${first}/cancel`, { method: "POST" })).text(), /Nothing was charged/);
    await eventually("expired", () => local.outcomes(r.orderId).includes("expired"));
    await local.buy(r);
    assert.notEqual(await local.linkFor(r.orderId, 2), first);
  });
});

describe("internal endpoints", () => {
  test("order lookup and refund need an OIDC token for the payment audience, from a listed caller", async () => {
    const r = request();
    await local.buy(r);
    const link = await local.linkFor(r.orderId);
    const url = `${local.url}/internal/orders/${encodeURIComponent(r.orderId)}`;
    assert.equal((await fetch(url)).status, 401);
    const other = await world.issuer.sign({ sub: "payment-admin", aud: "limiter" });
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${other}` } })).status, 401);
    // A valid token of a caller not in PAYMENT_INTERNAL_CALLERS, even with the admin scope: 403.
    const stranger = { headers: await world.internalAuth({ sub: "generation", admin: true }) };
    assert.equal((await fetch(url, stranger)).status, 403);
    assert.equal((await fetch(`${url}/refund`, { method: "POST", ...stranger })).status, 403);
    const reader = await world.internalAuth();
    const auth = await world.internalAuth({ admin: true });
    const found = (await (await fetch(url, { headers: auth })).json()) as {
      state: string;
      link: string;
      number: string;
    };
    assert.equal(found.state, "link_sent");
    assert.equal(found.link, link);
    assert.match(found.number, ORDER_NUMBER);
    assert.equal((await fetch(`${url}/refund`, { method: "POST", headers: auth })).status, 409);
    await fetch(`${link}/pay`, { method: "POST" });
    await local.orderIn(r.orderId, "paid");
    // Reading is for every listed caller; a refund needs the admin scope.
    assert.equal((await fetch(url, { headers: reader })).status, 200);
    const refused = await fetch(`${url}/refund`, { method: "POST", headers: reader });
    assert.equal(refused.status, 403);
    assert.match(((await refused.json()) as { error: string }).error, /needs the "payment.admin" scope/);
    assert.equal((await local.order(r.orderId))?.state, "paid");
    const refunded = await fetch(`${url}/refund`, { method: "POST", headers: auth });
    assert.equal(refunded.status, 200);
    assert.equal(((await refunded.json()) as { state: string }).state, "refunded");
    assert.equal((await fetch(`${url}/refund`, { method: "POST", headers: auth })).status, 200, "idempotent");
    assert.equal((await fetch(`${local.url}/internal/orders/nope`, { headers: auth })).status, 404);
    assert.equal((await fetch(`${local.url}/internal/orders/no%20pe`, { headers: auth })).status, 400);
    assert.equal((await fetch(`${url}/refund`, { method: "POST" })).status, 401);
  });

  test("the order number as people type it finds the order too", async () => {
    const r = request();
    await local.buy(r);
    const { number } = await local.orderIn(r.orderId, "link_sent");
    const auth = await world.internalAuth();
    const typed = [
      number,
      number.replace("-", ""),
      number.toLowerCase(),
      number.replace(/1/g, "l").replace(/0/g, "o"),
    ];
    for (const asked of typed) {
      const found = await fetch(`${local.url}/internal/orders/${encodeURIComponent(asked)}`, {
        headers: auth,
      });
      assert.equal(found.status, 200, asked);
      assert.equal(((await found.json()) as { orderId: string }).orderId, r.orderId);
    }
    assert.equal((await fetch(`${local.url}/internal/orders/ZZZZ-ZZZU`, { headers: auth })).status, 404);
  });

  test("metrics: orders by state, conversion, provider latency", async () => {
    const metrics = await (await fetch(`${local.service.endpoints.ops}/metrics`)).text();
    assert.match(metrics, /payment_orders\{state="paid",service="payment"\} [1-9]/);
    assert.match(metrics, /payment_link_conversion_ratio\{service="payment"\} 0\.\d+/);
    assert.match(
      metrics,
      /payment_provider_request_seconds_count\{service="payment",provider="local",operation="create_session",result="ok"\} [1-9]/,
    );
    assert.match(metrics, /payment_requests_total\{outcome="rejected",service="payment"\} 1/);
    assert.match(metrics, /payment_refunds_total\{reason="by_shop",service="payment"\} 1/);
  });
});

describe("stripe provider (stripe-mock)", () => {
  test("a Checkout Session is created with the order number as idempotency key and in the metadata", async () => {
    const provider = new StripeProvider({
      secretKey: "sk_test_123",
      webhookSecret: STRIPE_WEBHOOK_SECRET,
      publicUrl: "http://127.0.0.1:3003",
      toleranceSeconds: 300,
      timeoutMs: 5000,
      apiUrl: world.stripeMockUrl,
    });
    const sent: { idempotency_key?: string; path?: string }[] = [];
    provider.stripe.on("request", (e: { idempotency_key?: string; path?: string }) => sent.push(e));
    const base = {
      orderNumber: "7KQ2-M9XD",
      amount: 1990,
      currency: "EUR",
      productName: "ceramic mug",
      expiresAt: new Date(Date.now() + 3600_000),
    };
    const first = await provider.createSession({ ...base, attempt: 1, idempotencyKey: "7KQ2-M9XD" });
    assert.match(first.id, /^cs_/);
    assert.match(first.url, /^https:\/\//);
    await provider.createSession({ ...base, attempt: 2, idempotencyKey: "7KQ2-M9XD#2" });
    assert.equal(await provider.expireSession(first.id), "expired");
    assert.deepEqual(
      sent.map((e) => [e.path, e.idempotency_key]),
      [
        ["/v1/checkout/sessions", "7KQ2-M9XD"],
        ["/v1/checkout/sessions", "7KQ2-M9XD#2"],
        // Expiring is idempotent by nature: the SDK's own key for its retries is enough.
        [`/v1/checkout/sessions/${first.id}/expire`, sent[2]?.idempotency_key],
      ],
    );
    assert.match(sent[2]?.idempotency_key ?? "", /^stripe-node-retry-/);
  });

  test("a buy through the stripe provider, then a webhook verified with Stripe-Signature", async () => {
    const r = request();
    await stripe.buy(r);
    const link = await stripe.linkFor(r.orderId);
    assert.match(link, /^https:\/\//);
    const [session] = await stripe.sessionsOf(r.orderId);
    assert.ok(session);
    const { number } = await stripe.order(r.orderId);
    const object = {
      id: session._id,
      client_reference_id: number,
      metadata: { order_number: number, attempt: "1" },
      payment_status: "paid",
      payment_intent: "pi_123",
    };
    const wrong = stripeEvent("checkout.session.completed", object, "whsec_wrong");
    assert.equal(await stripe.deliver(wrong.body, wrong.signature, "stripe"), 400);
    const old = stripeEvent(
      "checkout.session.completed",
      object,
      STRIPE_WEBHOOK_SECRET,
      Math.floor(Date.now() / 1000) - 900,
    );
    assert.equal(await stripe.deliver(old.body, old.signature, "stripe"), 400);
    assert.equal((await stripe.order(r.orderId))?.state, "link_sent");
    const good = stripeEvent("checkout.session.completed", object);
    assert.equal(await stripe.deliver(good.body, good.signature, "stripe"), 200);
    assert.equal(await stripe.deliver(good.body, good.signature, "stripe"), 200);
    await eventually("succeeded", () => stripe.outcomes(r.orderId).includes("succeeded"));
    const order = await stripe.order(r.orderId);
    assert.equal(order?.state, "paid");
    assert.equal(order?.paymentRef, "pi_123");
    // The local provider's webhook does not exist on a Stripe deployment.
    assert.equal(await stripe.deliver(good.body, good.signature, "local"), 404);
  });

  test("an event for a session we never created is unknown_order, whatever order number it carries", async () => {
    const r = request();
    await stripe.buy(r);
    await stripe.linkFor(r.orderId);
    const { number } = await stripe.order(r.orderId);
    // Signed as Stripe signs, naming this order: its session is not one we created, so it is
    // acknowledged (Stripe stops retrying) and nothing changes (payment-forgery.test.ts: paid too).
    const expired = stripeEvent("checkout.session.expired", {
      id: "cs_unknown",
      client_reference_id: number,
      metadata: { order_number: number },
    });
    assert.equal(await stripe.deliver(expired.body, expired.signature, "stripe"), 200);
    const event = await stripe.db.collection("payment_provider_events").findOne({ sessionId: "cs_unknown" });
    assert.equal(event?.outcome, "unknown_order");
    assert.equal(event?.orderId, undefined);
    assert.equal((await stripe.order(r.orderId))?.state, "link_sent");
    const foreign = stripeEvent("checkout.session.expired", {
      id: "cs_foreign",
      client_reference_id: r.orderId,
      metadata: { order_id: r.orderId },
    });
    assert.equal(await stripe.deliver(foreign.body, foreign.signature, "stripe"), 200);
    const unknown = await stripe.db
      .collection("payment_provider_events")
      .findOne({ sessionId: "cs_foreign" });
    assert.equal(unknown?.outcome, "unknown_order");
    assert.deepEqual(stripe.outcomes(r.orderId), ["linkCreated"]);
  });

  test("checkout.session.expired and async_payment_failed end the session", async () => {
    for (const type of ["checkout.session.expired", "checkout.session.async_payment_failed"]) {
      const r = request();
      await stripe.buy(r);
      await stripe.linkFor(r.orderId);
      const [session] = await stripe.sessionsOf(r.orderId);
      const { body, signature } = stripeEvent(type, { id: session?._id });
      assert.equal(await stripe.deliver(body, signature, "stripe"), 200);
      const expected = type.endsWith("expired") ? "expired" : "failed";
      await eventually(expected, () => stripe.outcomes(r.orderId).includes(expected));
      assert.equal((await stripe.order(r.orderId))?.state, expected);
    }
  });
});

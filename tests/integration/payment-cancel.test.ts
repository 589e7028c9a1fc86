import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { contentType, deadLetterTopic, Header } from "@taituri/kafka";
import { payment } from "@taituri/proto";
import { eventually, readTopic } from "@taituri/testing/harness";
import {
  type LocalAndStripe,
  localProvider,
  type PaymentInstance,
  type PaymentWorld,
  paymentRequest,
  sessionIdOf,
  startLocalAndStripe,
  stripeEvent,
  type WireRequest,
} from "./payment-harness.ts";

/**
 * Cancelling and replacing orders on the real servers (Kafka, FerretDB, the local checkout, Stripe
 * through stripe-mock behind a recording proxy): the conversation's CancelOrder closes the
 * checkout, a payment that lands all the same is refunded (the shopper cancelled) or kept (the
 * order was replaced), and a successful payment is never ignored.
 */
const { CANCEL_REASON_SHOPPER: SHOPPER, CANCEL_REASON_REPLACED: REPLACED } = payment.CancelReason;

let setup: LocalAndStripe | undefined;
let world: PaymentWorld;
let local: PaymentInstance;
let stripe: PaymentInstance;
let proxy: LocalAndStripe["proxy"];

before(async () => {
  setup = await startLocalAndStripe("cancel");
  ({ world, local, stripe, proxy } = setup);
});

after(async () => {
  await setup?.stop();
});

let conversations = 0;
/** A conversation of a shopper known by phone number, like the conversation's ids. */
const conversation = () => `PNX:1555000${String(++conversations).padStart(4, "0")}`;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An order with an open local checkout: the request, its link, session and number. */
async function openOrder(i: PaymentInstance, n = 1, conversationId = conversation()) {
  const r = paymentRequest(conversationId, n);
  await i.buy(r);
  const link = await i.linkFor(r.orderId);
  const { number } = await i.order(r.orderId);
  return { r, link, sessionId: sessionIdOf(link), number: number as string };
}

const paid = (i: PaymentInstance, sessionId: string, number: string) =>
  localProvider(i.url).signedEvent("checkout.session.completed", { id: sessionId, orderNumber: number });

describe("cancel (local checkout)", () => {
  test("(a) cancel, then pay the old link: 409, nothing charged, the order stays cancelled", async () => {
    const { r, link } = await openOrder(local);
    await local.cancel(r, SHOPPER);
    const order = await local.orderIn(r.orderId, "cancelled");
    assert.equal(order.cancelReason, "shopper");
    const page = await fetch(link);
    assert.match(await page.text(), /expired or was cancelled\. Nothing was charged/);
    const late = await fetch(`${link}/pay`, { method: "POST" });
    assert.equal(late.status, 409);
    assert.match(await late.text(), /Nothing was charged/);
    await pause(800);
    const after = await local.order(r.orderId);
    assert.equal(after.state, "cancelled");
    assert.equal(after.paidSessionId, undefined);
    assert.deepEqual(local.outcomes(r.orderId), ["linkCreated"]);
    // Asked again (it should not be): refused, no new session.
    await local.buy(r);
    await eventually("failed", () => local.outcomes(r.orderId).includes("failed"));
    const failed = local.eventsOf(r.orderId)[1];
    assert.equal(failed?.outcome?.$case === "failed" && failed.outcome.value.reason, "order cancelled");
    assert.equal((await local.sessionsOf(r.orderId)).length, 1);
  });

  test("(b) cancel, then the payment lands anyway, 3 times at once: refunded once, the shopper told", async () => {
    const { r, sessionId, number } = await openOrder(local);
    await local.cancel(r, SHOPPER);
    await local.orderIn(r.orderId, "cancelled");
    const refundsBefore = await local.metric("payment_provider_request_seconds_count", {
      operation: "refund",
    });
    const { body, signature } = paid(local, sessionId, number);
    const statuses = await Promise.all([1, 2, 3].map(() => local.deliver(body, signature)));
    assert.deepEqual(statuses, [200, 200, 200]);
    const refunded = await eventually("refunded", () =>
      local.eventsOf(r.orderId).find((e) => e.outcome?.$case === "refunded"),
    );
    assert.equal(refunded.orderNumber, number);
    assert.equal(refunded.conversationId, r.conversationId);
    assert.deepEqual(refunded.outcome, {
      $case: "refunded",
      value: {
        reason: payment.RefundReason.REFUND_REASON_CANCELLED_BEFORE_PAYMENT,
        amount: 1990,
        currency: "EUR",
      },
    });
    await pause(1500);
    assert.deepEqual(local.outcomes(r.orderId), ["linkCreated", "refunded"], "no succeeded, one refunded");
    const order = await local.order(r.orderId);
    assert.equal(order.state, "refunded");
    assert.equal(order.paidSessionId, sessionId);
    assert.equal(order.refundReason, "cancelled_before_payment");
    assert.deepEqual(
      order.history.map((h: { state: string }) => h.state),
      ["created", "link_sent", "cancelled", "refund_due", "refunded"],
    );
    const refundsAfter = await local.metric("payment_provider_request_seconds_count", {
      operation: "refund",
    });
    assert.equal(refundsAfter - refundsBefore, 1, "the provider's refund was asked for once");
    // The checkout page now says what happened.
    assert.match(
      await (await fetch(`${local.url}/checkout/${sessionId}`)).text(),
      /cancelled, so your payment is refunded/,
    );
  });

  test("(b') a refund_due left by a writer that died is finished by the sweeper", async () => {
    const { r, sessionId, number } = await openOrder(local);
    await local.cancel(r, SHOPPER);
    const cancelled = await local.orderIn(r.orderId, "cancelled");
    // What a writer leaves when it dies between the claim and the provider's refund.
    const at = new Date(Date.now() - 60_000);
    await local.db.collection("payment_orders").updateOne(
      { _id: r.orderId as never },
      {
        $set: {
          state: "refund_due",
          paidSessionId: sessionId,
          paidAt: at,
          refundReason: "cancelled_before_payment",
          refundDueAt: at,
          version: cancelled.version + 1,
          history: [...cancelled.history, { state: "refund_due", at, by: "test" }],
        },
      },
    );
    await local.orderIn(r.orderId, "refunded");
    const refunded = await eventually("refunded", () =>
      local.eventsOf(r.orderId).find((e) => e.outcome?.$case === "refunded"),
    );
    assert.equal(refunded.orderNumber, number);
  });

  test("(c) replaced, then paid: kept, paid and confirmed; the new order has its own number", async () => {
    const conversationId = conversation();
    const old = await openOrder(local, 1, conversationId);
    await local.cancel(old.r, REPLACED);
    const next = paymentRequest(conversationId, 2, { designId: "d3" });
    await local.buy(next);
    const nextLink = await local.linkFor(next.orderId);
    assert.equal((await local.order(old.r.orderId)).cancelReason, "replaced");
    const { body, signature } = paid(local, old.sessionId, old.number);
    assert.equal(await local.deliver(body, signature), 200);
    await eventually("succeeded", () => local.outcomes(old.r.orderId).includes("succeeded"));
    const order = await local.order(old.r.orderId);
    assert.equal(order.state, "paid");
    assert.deepEqual(
      order.history.map((h: { state: string }) => h.state),
      ["created", "link_sent", "cancelled", "paid"],
    );
    const succeeded = local.eventsOf(old.r.orderId).find((e) => e.outcome?.$case === "succeeded");
    assert.equal(succeeded?.orderNumber, old.number);
    // The new order is untouched and payable.
    const nextOrder = await local.order(next.orderId);
    assert.equal(nextOrder.state, "link_sent");
    assert.notEqual(nextOrder.number, old.number);
    assert.match(await (await fetch(`${nextLink}/pay`, { method: "POST" })).text(), /Payment received/);
  });

  test("a cancel after the payment changes nothing; a redelivered cancel changes nothing either", async () => {
    const { r, link } = await openOrder(local);
    await fetch(`${link}/pay`, { method: "POST" });
    await local.orderIn(r.orderId, "paid");
    await local.cancel(r, SHOPPER);
    await local.cancel(r, SHOPPER);
    await eventually(
      "counted",
      async () => (await local.metric("payment_order_cancellations_total", { outcome: "already_paid" })) >= 2,
    );
    assert.equal((await local.order(r.orderId)).state, "paid");
    assert.deepEqual(local.outcomes(r.orderId), ["linkCreated", "succeeded"]);
  });

  test("a record of an unknown content type is dead-lettered", async () => {
    const r = paymentRequest(conversation());
    await world.producer.send(local.topics.paymentRequests, [
      {
        key: r.conversationId,
        value: Buffer.from(payment.PaymentRequest.encode(r).finish()),
        headers: { [Header.type]: contentType("payment.v1.Refund") },
      },
    ]);
    const dead = await readTopic(world.kafka, deadLetterTopic(local.topics.paymentRequests), (records) =>
      records.some((x) => x.key === r.conversationId),
    );
    assert.match(
      dead.find((x) => x.key === r.conversationId)?.headers["dlq-error"] ?? "",
      /a record of type "[^"]*payment\.v1\.Refund" on .*payment\.requests\.v1, which carries/,
    );
    assert.equal(await local.order(r.orderId), null);
  });
});

describe("cancel (Stripe, stripe-mock)", () => {
  const expiresOf = (sessionId: string) =>
    proxy.requests.filter(
      (q) => q.method === "POST" && q.url === `/v1/checkout/sessions/${sessionId}/expire`,
    );
  const refunds = (number: string) =>
    proxy.requests.filter(
      (q: WireRequest) => q.url === "/v1/refunds" && q.headers["idempotency-key"] === `refund:${number}`,
    );

  test("(d) cancel expires the session at Stripe; a completion that raced it is refunded once", async () => {
    const r = paymentRequest(conversation());
    await stripe.buy(r);
    await stripe.linkFor(r.orderId);
    const [session] = await stripe.sessionsOf(r.orderId);
    const sessionId = String(session?._id);
    const { number } = await stripe.order(r.orderId);
    await stripe.cancel(r, SHOPPER);
    await stripe.orderIn(r.orderId, "cancelled");
    await eventually("the expire call", () => expiresOf(sessionId).length === 1);
    // The shopper had paid just before: Stripe's completion arrives after the cancel, 3 times.
    const { body, signature } = stripeEvent("checkout.session.completed", {
      id: sessionId,
      client_reference_id: number,
      metadata: { order_number: number },
      payment_status: "paid",
      payment_intent: "pi_123",
    });
    const statuses = await Promise.all([1, 2, 3].map(() => stripe.deliver(body, signature, "stripe")));
    assert.deepEqual(statuses, [200, 200, 200]);
    await stripe.orderIn(r.orderId, "refunded");
    await eventually("refunded", () => stripe.outcomes(r.orderId).includes("refunded"));
    await pause(1000);
    assert.equal(refunds(number).length, 1, "one refund at Stripe, under the order's refund key");
    assert.match(refunds(number)[0]?.body ?? "", /payment_intent=pi_123/);
    assert.deepEqual(stripe.outcomes(r.orderId), ["linkCreated", "refunded"]);
    // The webhook Stripe sends for the expiry it was asked for changes nothing.
    const expired = stripeEvent("checkout.session.expired", { id: sessionId });
    assert.equal(await stripe.deliver(expired.body, expired.signature, "stripe"), 200);
    await pause(300);
    assert.equal((await stripe.order(r.orderId)).state, "refunded");
  });

  test("a redelivered cancel expires the session again, and cancels once", async () => {
    const r = paymentRequest(conversation());
    await stripe.buy(r);
    await stripe.linkFor(r.orderId);
    const [session] = await stripe.sessionsOf(r.orderId);
    await stripe.cancel(r, REPLACED);
    await stripe.cancel(r, REPLACED);
    await eventually("two expire calls", () => expiresOf(String(session?._id)).length === 2);
    const order = await stripe.order(r.orderId);
    assert.equal(order.state, "cancelled");
    assert.equal(order.history.filter((h: { state: string }) => h.state === "cancelled").length, 1);
  });
});

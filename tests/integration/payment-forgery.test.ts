import assert from "node:assert/strict";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Collection } from "mongodb";
import {
  LOCAL_SECRET,
  type PaymentInstance,
  type PaymentWorld,
  paymentRequest,
  sessionIdOf,
  startPaymentWorld,
  stripeEvent,
} from "./payment-harness.ts";

/**
 * Forged provider events on the real servers (Kafka, FerretDB, the local checkout, Stripe's
 * webhook). The local provider's webhook secret has a public development default, so anyone may
 * be able to sign events: what a signed event may not do is pay an order it does not belong to.
 * An event is applied only to the order whose session the payment service created
 * (payment_sessions); an event for any other session, or one naming another order than its
 * session's, changes nothing; ids of another type or shape never reach MongoDB.
 */
let world: PaymentWorld;
let local: PaymentInstance;
let stripe: PaymentInstance;

before(async () => {
  world = await startPaymentWorld("forgery");
  local = await world.start("forgery-local");
  stripe = await world.startStripe("forgery-stripe");
});

after(async () => {
  await world?.stop();
});

let conversations = 0;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An order with an open checkout: the request, its link, session and number. */
async function openOrder(i: PaymentInstance) {
  const r = paymentRequest(`PNX:1555900${String(++conversations).padStart(4, "0")}`, 1);
  await i.buy(r);
  const link = await i.linkFor(r.orderId);
  const { number } = await i.order(r.orderId);
  return { r, link, sessionId: sessionIdOf(link), number: number as string };
}

/** Signs any body as docs/payment.md says the local provider does, with its secret. */
function forge(event: unknown): { body: string; signature: string } {
  const body = JSON.stringify(event);
  const t = Math.floor(Date.now() / 1000);
  const mac = createHmac("sha256", LOCAL_SECRET).update(`${t}.${body}`).digest("hex");
  return { body, signature: `t=${t},v1=${mac}` };
}

/** A Stripe-shaped checkout.session.completed, paid, for the session `id`. */
const completed = (id: unknown, object: Record<string, unknown> = {}, eventId: unknown = undefined) => ({
  id: eventId ?? `evt_forged_${randomUUID().replace(/-/g, "")}`,
  object: "event",
  type: "checkout.session.completed",
  created: Math.floor(Date.now() / 1000),
  data: { object: { id, payment_status: "paid", payment_intent: "lpi_forged", ...object } },
});

/** Delivers a forged event to the local webhook: the status and the outcome it was given. */
async function deliver(event: unknown): Promise<{ status: number; outcome?: string }> {
  const { body, signature } = forge(event);
  const response = await fetch(`${local.url}/payments/webhooks/local`, {
    method: "POST",
    headers: { "content-type": "application/json", "taituri-signature": signature },
    body,
  });
  const answer = (await response.json()) as { outcome?: string };
  return { status: response.status, ...(answer.outcome ? { outcome: answer.outcome } : {}) };
}

/** Every order is as it was: link_sent, its link the only event. */
async function untouched(i: PaymentInstance, orders: { r: { orderId: string } }[]): Promise<void> {
  await pause(800);
  for (const { r } of orders) {
    assert.equal((await i.order(r.orderId))?.state, "link_sent", r.orderId);
    assert.deepEqual(i.outcomes(r.orderId), ["linkCreated"], r.orderId);
  }
}

describe("forged checkout.session.completed", () => {
  test("for a session we never created, naming a real open order: unknown_order, nothing paid", async () => {
    const victim = await openOrder(local);
    // A guess of the right shape, and the id the order's number once led to (an HMAC of it under
    // the secret): neither is the victim's session.
    const guessed = `lcs_${randomBytes(24).toString("base64url")}`;
    const derived = `lcs_${createHmac("sha256", LOCAL_SECRET).update(`session:${victim.number}`).digest("base64url").slice(0, 32)}`;
    assert.notEqual(derived, victim.sessionId);
    for (const sessionId of [guessed, derived]) {
      const named = { client_reference_id: victim.number, metadata: { order_number: victim.number } };
      assert.deepEqual(await deliver(completed(sessionId, named)), { status: 200, outcome: "unknown_order" });
      assert.equal((await fetch(`${local.url}/checkout/${sessionId}`)).status, 404);
      assert.equal((await fetch(`${local.url}/checkout/${sessionId}/pay`, { method: "POST" })).status, 404);
    }
    const recorded = await local.db
      .collection("payment_provider_events")
      .find({ sessionId: { $in: [guessed, derived] } })
      .toArray();
    assert.deepEqual(
      recorded.map((e) => [e.outcome, e.orderId]),
      [
        ["unknown_order", undefined],
        ["unknown_order", undefined],
      ],
    );

    // Stripe's webhook the same, were its secret to leak: the session is what counts.
    const target = await (async () => {
      const r = paymentRequest(`PNX:1555800${String(++conversations).padStart(4, "0")}`, 1);
      await stripe.buy(r);
      await stripe.linkFor(r.orderId);
      return { r, number: (await stripe.order(r.orderId)).number as string };
    })();
    const signed = stripeEvent("checkout.session.completed", {
      id: "cs_test_forged",
      client_reference_id: target.number,
      metadata: { order_number: target.number, attempt: "1" },
      payment_status: "paid",
      payment_intent: "pi_forged",
    });
    assert.equal(await stripe.deliver(signed.body, signed.signature, "stripe"), 200);
    await untouched(local, [victim]);
    await untouched(stripe, [target]);
    assert.ok((await local.metric("payment_webhooks_total", { outcome: "unknown_order" })) >= 2);
  });

  test("for a real session of another order, naming the victim: order_mismatch, neither order paid", async () => {
    const attacker = await openOrder(local);
    const victim = await openOrder(local);
    const named = { client_reference_id: victim.number, metadata: { order_number: victim.number } };
    assert.deepEqual(await deliver(completed(attacker.sessionId, named)), {
      status: 200,
      outcome: "order_mismatch",
    });
    assert.deepEqual(
      await deliver(completed(attacker.sessionId, { metadata: { order_number: victim.number } })),
      {
        status: 200,
        outcome: "order_mismatch",
      },
    );
    // Two references that disagree are no provider's event at all.
    const split = { client_reference_id: attacker.number, metadata: { order_number: victim.number } };
    assert.equal((await deliver(completed(attacker.sessionId, split))).status, 400);
    await untouched(local, [attacker, victim]);
    assert.ok((await local.metric("payment_webhooks_total", { outcome: "order_mismatch" })) >= 2);

    // The refusals block nothing: the victim's own checkout still takes the payment.
    const paid = await fetch(`${victim.link}/pay`, { method: "POST" });
    assert.match(await paid.text(), /Payment received/);
    await local.orderIn(victim.r.orderId, "paid");
    assert.equal((await local.order(attacker.r.orderId))?.state, "link_sent");
  });
});

describe("ids of another type or shape", () => {
  test("are refused with 400 and reach no query", async () => {
    const victim = await openOrder(local);
    const marker = `forged-${randomUUID()}`;
    // Every filter and document the service hands MongoDB's driver while the forgeries arrive.
    const seen: string[] = [];
    const methods = [
      "find",
      "findOne",
      "insertOne",
      "insertMany",
      "updateOne",
      "updateMany",
      "replaceOne",
      "deleteOne",
      "deleteMany",
      "countDocuments",
      "aggregate",
      "findOneAndUpdate",
      "distinct",
    ] as const;
    const prototype = Collection.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
    const originals = new Map(methods.map((name) => [name, prototype[name]]));
    for (const [name, original] of originals) {
      prototype[name] = function (this: unknown, ...args: unknown[]) {
        for (const arg of args.slice(0, 2)) {
          try {
            seen.push(JSON.stringify(arg) ?? "");
          } catch {
            seen.push(String(arg));
          }
        }
        return original?.apply(this, args);
      };
    }
    const eventsBefore = await local.db.collection("payment_provider_events").countDocuments();
    const answers: number[] = [];
    try {
      const injected = { $gt: marker };
      for (const event of [
        completed(injected),
        completed(victim.sessionId, {}, injected),
        completed(victim.sessionId, { metadata: { order_number: injected } }),
        completed(victim.sessionId, { client_reference_id: injected }),
        completed(victim.sessionId, { payment_intent: { id: { $ne: marker } } }),
        completed(`lcs_${marker}' || '1'=='1`),
      ])
        answers.push((await deliver(event)).status);
      const asText = encodeURIComponent(JSON.stringify(injected));
      answers.push((await fetch(`${local.url}/checkout/${asText}`)).status);
      answers.push((await fetch(`${local.url}/checkout/${asText}/pay`, { method: "POST" })).status);
      answers.push((await fetch(`${local.url}/checkout/${asText}/image`)).status);
      const auth = await world.internalAuth({ admin: true });
      answers.push((await fetch(`${local.url}/internal/orders/${asText}`, { headers: auth })).status);
      answers.push(
        (await fetch(`${local.url}/internal/orders/${asText}/refund`, { method: "POST", headers: auth }))
          .status,
      );
      // The recorder sees what does reach MongoDB: a valid checkout's lookup.
      assert.equal((await fetch(victim.link)).status, 200);
    } finally {
      for (const [name, original] of originals) if (original) prototype[name] = original;
    }
    assert.deepEqual(answers, Array(11).fill(400));
    assert.ok(
      seen.some((s) => s.includes(victim.sessionId)),
      "the recorder saw the valid lookup",
    );
    assert.deepEqual(
      seen.filter((s) => s.includes(marker)),
      [],
    );
    assert.equal(await local.db.collection("payment_provider_events").countDocuments(), eventsBefore);
    assert.ok((await local.metric("payment_webhooks_total", { outcome: "malformed" })) >= 6);
    await untouched(local, [victim]);
  });
});

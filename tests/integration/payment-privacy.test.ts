import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { LocalProvider } from "@taituri/payment-service/local-provider";
import { payment } from "@taituri/proto";
import { eventually } from "@taituri/testing/harness";
import {
  type LocalAndStripe,
  type PaymentInstance,
  type PaymentWorld,
  paymentRequest,
  sessionIdOf,
  startLocalAndStripe,
  stripeEvent,
  type WireRequest,
} from "./payment-harness.ts";

/**
 * Nothing that identifies the shopper reaches a payment provider. On the real servers, for a
 * shopper known by phone number and one known only by BSUID, every provider call the payment
 * service makes (create a session, expire it on cancel, refund after a cancel, refund by the shop)
 * is recorded where it leaves: for Stripe, by an HTTP proxy in front of stripe-mock (URL, query,
 * headers including Idempotency-Key, body); for the local provider, the SessionRequest it
 * receives, the signed events it emits and the checkout pages it serves. None may contain the
 * conversation id, the phone number, the BSUID or the internal order id.
 */
const SHOPPERS = [
  { conversationId: "PNX:15550001234", secret: "15550001234" },
  { conversationId: "PNX:US.13491208655302741918", secret: "13491208655302741918" },
];
const { CANCEL_REASON_SHOPPER: SHOPPER } = payment.CancelReason;

/** Every way the ids could travel: as they are, URL-encoded, and their identifying parts. */
const forbidden = SHOPPERS.flatMap(({ conversationId, secret }) => [
  conversationId,
  encodeURIComponent(conversationId),
  `${conversationId}/o1`,
  `${conversationId}/o2`,
  secret,
  "US.1349",
]);

/** What the local provider was given and gave out, recorded at its methods. */
const localSaw: { what: string; text: string }[] = [];
const createSession = LocalProvider.prototype.createSession;
const signedEvent = LocalProvider.prototype.signedEvent;
LocalProvider.prototype.createSession = function (this: LocalProvider, request) {
  localSaw.push({ what: "session request", text: JSON.stringify(request) });
  return createSession.call(this, request);
};
LocalProvider.prototype.signedEvent = function (this: LocalProvider, ...args) {
  const signed = signedEvent.apply(this, args);
  localSaw.push({ what: "signed event", text: `${signed.signature}\n${signed.body}` });
  return signed;
};

let setup: LocalAndStripe | undefined;
let world: PaymentWorld;
let local: PaymentInstance;
let stripe: PaymentInstance;
let proxy: LocalAndStripe["proxy"];

before(async () => {
  setup = await startLocalAndStripe("privacy");
  ({ world, local, stripe, proxy } = setup);
});

after(async () => {
  LocalProvider.prototype.createSession = createSession;
  LocalProvider.prototype.signedEvent = signedEvent;
  await setup?.stop();
});

/** The forbidden strings found in `text`, also once percent- and form-decoded. */
function leaks(text: string): string[] {
  let decoded = text;
  try {
    decoded = decodeURIComponent(text.replace(/\+/g, " "));
  } catch {}
  return forbidden.filter((f) => text.includes(f) || decoded.includes(f));
}

const wire = (q: WireRequest) => `${q.method} ${q.url}\n${JSON.stringify(q.headers)}\n${q.body}`;

async function refundByShop(i: PaymentInstance, number: string): Promise<void> {
  const response = await fetch(`${i.url}/internal/orders/${number}/refund`, {
    method: "POST",
    headers: await world.internalAuth({ admin: true }),
  });
  assert.equal(response.status, 200, await response.text());
}

describe("what reaches a payment provider", () => {
  test("Stripe: sessions, expiry and refunds carry the order number, never the shopper", async () => {
    const numbers: string[] = [];
    for (const { conversationId } of SHOPPERS) {
      // An order cancelled by the shopper, whose payment lands anyway: expire, then refund.
      const cancelled = paymentRequest(conversationId, 1);
      await stripe.buy(cancelled);
      await stripe.linkFor(cancelled.orderId);
      const [first] = await stripe.sessionsOf(cancelled.orderId);
      const one = (await stripe.order(cancelled.orderId)).number as string;
      await stripe.cancel(cancelled, SHOPPER);
      await stripe.orderIn(cancelled.orderId, "cancelled");
      const completed = stripeEvent("checkout.session.completed", {
        id: first?._id,
        client_reference_id: one,
        metadata: { order_number: one },
        payment_status: "paid",
        payment_intent: "pi_123",
      });
      assert.equal(await stripe.deliver(completed.body, completed.signature, "stripe"), 200);
      await stripe.orderIn(cancelled.orderId, "refunded");

      // An order paid and then refunded by the shop.
      const kept = paymentRequest(conversationId, 2);
      await stripe.buy(kept);
      await stripe.linkFor(kept.orderId);
      const [second] = await stripe.sessionsOf(kept.orderId);
      const two = (await stripe.order(kept.orderId)).number as string;
      const paid = stripeEvent("checkout.session.completed", {
        id: second?._id,
        payment_status: "paid",
        payment_intent: "pi_456",
      });
      assert.equal(await stripe.deliver(paid.body, paid.signature, "stripe"), 200);
      await stripe.orderIn(kept.orderId, "paid");
      await refundByShop(stripe, two);
      numbers.push(one, two);
    }

    const calls = proxy.requests.map((q) => `${q.method} ${q.url.replace(/cs_\w+/, "cs_…")}`);
    for (const call of [
      "POST /v1/checkout/sessions",
      "POST /v1/checkout/sessions/cs_…/expire",
      "POST /v1/refunds",
    ])
      assert.ok(calls.includes(call), `${call} was recorded: ${calls.join(", ")}`);
    assert.equal(calls.filter((c) => c === "POST /v1/refunds").length, 4);
    // The check can see what it looks for: the order numbers are there, in body and keys.
    const all = proxy.requests.map(wire).join("\n");
    for (const number of numbers) {
      assert.ok(decodeURIComponent(all).includes(`client_reference_id=${number}`), number);
      assert.ok(all.includes(`"idempotency-key":"refund:${number}"`), number);
    }
    for (const q of proxy.requests) assert.deepEqual(leaks(wire(q)), [], wire(q));

    // Beyond what is looked for: every field sent is one of these, and every reference in them is
    // an order number (the metadata and client_reference_id), so nothing else can ride along.
    const address = ["line1", "line2", "city", "postal_code", "country"].map(
      (part) => `payment_intent_data[shipping][address][${part}]`,
    );
    const allowed: Record<string, string[]> = {
      "POST /v1/checkout/sessions": [
        "mode",
        "client_reference_id",
        "expires_at",
        "success_url",
        "cancel_url",
        "metadata[order_number]",
        "metadata[attempt]",
        "line_items[0][quantity]",
        "line_items[0][price_data][currency]",
        "line_items[0][price_data][unit_amount]",
        "line_items[0][price_data][product_data][name]",
        "payment_intent_data[metadata][order_number]",
        "payment_intent_data[shipping][name]",
        ...address,
      ],
      "POST /v1/checkout/sessions/cs_…/expire": [],
      "POST /v1/refunds": ["payment_intent", "amount", "metadata[order_number]"],
    };
    for (const q of proxy.requests) {
      const call = `${q.method} ${q.url.replace(/cs_\w+/, "cs_…")}`;
      const fields = allowed[call];
      assert.ok(fields, `an unexpected call to Stripe: ${call}`);
      const form = new URLSearchParams(q.body);
      for (const key of form.keys()) assert.ok(fields.includes(key), `${call} sends ${key}`);
      for (const key of [
        "metadata[order_number]",
        "client_reference_id",
        "payment_intent_data[metadata][order_number]",
      ])
        if (form.has(key))
          assert.ok(numbers.includes(form.get(key) ?? ""), `${call} ${key}=${form.get(key)}`);
      if (form.has("metadata[attempt]")) assert.match(form.get("metadata[attempt]") ?? "", /^\d+$/);
    }
  });

  test("local: the session request, the signed events and the checkout pages", async () => {
    const pages: string[] = [];
    for (const { conversationId } of SHOPPERS) {
      const cancelled = paymentRequest(conversationId, 1);
      await local.buy(cancelled);
      const link = await local.linkFor(cancelled.orderId);
      pages.push(await (await fetch(link)).text());
      await local.cancel(cancelled, SHOPPER);
      await local.orderIn(cancelled.orderId, "cancelled");
      const refused = await fetch(`${link}/pay`, { method: "POST" });
      assert.equal(refused.status, 409);
      pages.push(await refused.text());
      const number = (await local.order(cancelled.orderId)).number as string;
      const late = new LocalProvider({
        secret: "payment-it-local-webhook-secret",
        publicUrl: local.url,
        toleranceSeconds: 300,
      }).signedEvent("checkout.session.completed", { id: sessionIdOf(link), orderNumber: number });
      assert.equal(await local.deliver(late.body, late.signature), 200);
      await local.orderIn(cancelled.orderId, "refunded");
      pages.push(await (await fetch(link)).text());

      const kept = paymentRequest(conversationId, 2);
      await local.buy(kept);
      const keptLink = await local.linkFor(kept.orderId);
      pages.push(await (await fetch(keptLink)).text());
      pages.push(await (await fetch(`${keptLink}/pay`, { method: "POST" })).text());
      await local.orderIn(kept.orderId, "paid");
      await refundByShop(local, (await local.order(kept.orderId)).number);
      pages.push(await (await fetch(keptLink)).text());
    }
    await eventually("every provider call recorded", () => localSaw.length >= 6);
    assert.equal(localSaw.filter((s) => s.what === "session request").length, 4);
    assert.ok(localSaw.filter((s) => s.what === "signed event").length >= 4);
    assert.ok(localSaw.every((s) => /"orderNumber":"|"order_number":"/.test(s.text)));
    for (const seen of localSaw) assert.deepEqual(leaks(seen.text), [], `${seen.what}: ${seen.text}`);
    assert.equal(pages.length, 12);
    for (const page of pages) assert.deepEqual(leaks(page), [], page);
  });
});

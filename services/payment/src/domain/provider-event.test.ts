import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type CheckoutEventLike, mapCheckoutEvent } from "./provider-event.ts";

const ev = (type: string, object: CheckoutEventLike["data"]["object"] = {}): CheckoutEventLike => ({
  id: "evt_1",
  type,
  data: { object: { id: "cs_1", metadata: { order_id: "o1" }, ...object } },
});

describe("provider events", () => {
  test("completed and paid: the order is paid, with the payment reference", () => {
    assert.deepEqual(
      mapCheckoutEvent(ev("checkout.session.completed", { payment_status: "paid", payment_intent: "pi_1" })),
      {
        type: "event",
        event: { id: "evt_1", sessionId: "cs_1", orderId: "o1", kind: "paid", paymentRef: "pi_1" },
      },
    );
  });

  test("completed but unpaid (a bank debit on its way) pays nothing yet", () => {
    assert.equal(
      mapCheckoutEvent(ev("checkout.session.completed", { payment_status: "unpaid" })).type,
      "ignored",
    );
    assert.equal(mapCheckoutEvent(ev("checkout.session.async_payment_succeeded")).type, "event");
  });

  test("expired and async_payment_failed end the session", () => {
    const expired = mapCheckoutEvent(ev("checkout.session.expired"));
    assert.equal(expired.type === "event" && expired.event.kind, "expired");
    const failed = mapCheckoutEvent(ev("checkout.session.async_payment_failed"));
    assert.equal(failed.type === "event" && failed.event.kind, "failed");
  });

  test("the order id falls back to client_reference_id; other event types are ignored", () => {
    const mapped = mapCheckoutEvent({
      id: "e",
      type: "checkout.session.expired",
      data: { object: { id: "cs", client_reference_id: "o9" } },
    });
    assert.equal(mapped.type === "event" && mapped.event.orderId, "o9");
    assert.equal(mapCheckoutEvent(ev("charge.refunded")).type, "ignored");
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type CheckoutEventLike, mapCheckoutEvent, namesAnotherOrder } from "./provider-event.ts";

const ev = (type: string, object: CheckoutEventLike["data"]["object"] = {}): CheckoutEventLike => ({
  id: "evt_1",
  type,
  data: { object: { id: "cs_1", metadata: { order_number: "7KQ2-M9XD" }, ...object } },
});

describe("provider events", () => {
  test("completed and paid: the order is paid, with the payment reference", () => {
    assert.deepEqual(
      mapCheckoutEvent(ev("checkout.session.completed", { payment_status: "paid", payment_intent: "pi_1" })),
      {
        type: "event",
        event: { id: "evt_1", sessionId: "cs_1", orderNumber: "7KQ2-M9XD", kind: "paid", paymentRef: "pi_1" },
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

  test("the order number falls back to client_reference_id, read as people type it", () => {
    const mapped = mapCheckoutEvent({
      id: "evt_e",
      type: "checkout.session.expired",
      data: { object: { id: "cs_x", client_reference_id: "7kq2m9xd" } },
    });
    assert.equal(mapped.type === "event" && mapped.event.orderNumber, "7KQ2-M9XD");
  });

  test("a reference that is not an order number (another checkout of the account) names no order", () => {
    const mapped = mapCheckoutEvent({
      id: "evt_e",
      type: "checkout.session.expired",
      data: { object: { id: "cs_x", client_reference_id: "cart-42", metadata: { order_id: "x/o1" } } },
    });
    assert.equal(mapped.type, "event");
    assert.equal(mapped.type === "event" && mapped.event.orderNumber, undefined);
    assert.equal(mapCheckoutEvent(ev("charge.refunded")).type, "ignored");
  });

  test("ids of another type or shape make the event malformed: nothing in it is looked up", () => {
    const forged = (over: Record<string, unknown>, id: unknown = "evt_1") =>
      mapCheckoutEvent({
        id,
        type: "checkout.session.completed",
        data: { object: { id: "cs_1", payment_status: "paid", ...over } },
      } as unknown as CheckoutEventLike).type;
    assert.equal(forged({ id: { $gt: "" } }), "malformed");
    assert.equal(forged({ id: "cs_1' || '1" }), "malformed");
    assert.equal(forged({}, { $gt: "" }), "malformed");
    assert.equal(forged({}, "e".repeat(300)), "malformed");
    assert.equal(forged({ metadata: { order_number: { $gt: "" } } }), "malformed");
    assert.equal(forged({ metadata: ["7KQ2-M9XD"] }), "malformed");
    assert.equal(forged({ client_reference_id: 7 }), "malformed");
    assert.equal(forged({ payment_intent: { id: { $ne: null } } }), "malformed");
    assert.equal(forged({ payment_intent: "ch_1" }), "malformed");
    assert.equal(
      forged({ metadata: { order_number: "7KQ2-M9XD" }, client_reference_id: "0000-0000" }),
      "malformed",
    );
    assert.equal(forged({ payment_intent: { id: "pi_1" } }), "event");
    // Not an event at all, or another event type's object (not a session): ignored, whatever its id.
    for (const json of [null, 7, "evt_1", []])
      assert.equal(mapCheckoutEvent(json as unknown as CheckoutEventLike).type, "ignored");
    assert.equal(mapCheckoutEvent(ev("charge.refunded", { id: "ch_1" })).type, "ignored");
  });

  test("an event naming another order than its session's is caught; one naming none is not", () => {
    assert.equal(namesAnotherOrder({ orderNumber: "7KQ2-M9XD" }, "7KQ2-M9XD"), false);
    assert.equal(namesAnotherOrder({}, "7KQ2-M9XD"), false);
    assert.equal(namesAnotherOrder({ orderNumber: "0000-0000" }, "7KQ2-M9XD"), true);
  });
});

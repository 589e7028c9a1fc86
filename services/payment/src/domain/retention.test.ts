import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ORDER_STATES, PAID, TRANSITIONS } from "./order.ts";
import { deliveryExpired, ENDED, retentionCutoff, retentionOf } from "./retention.ts";

const DAY = 24 * 3600 * 1000;
const before = new Date("2025-03-01T00:00:00Z");
const older = new Date(before.getTime() - 1);
const newer = new Date(before.getTime() + DAY);

describe("which orders the retention forgets", () => {
  test("the ended states are states of the machine that some change leads to", () => {
    const reached = new Set(Object.values(TRANSITIONS).map((rule) => rule.to));
    for (const state of ENDED) {
      assert.ok(ORDER_STATES.includes(state), state);
      assert.ok(reached.has(state), `${state} is reached by a change`);
    }
  });

  test("an order still under way, paid and not yet sent, or owed a refund is kept however old", () => {
    const kept = ORDER_STATES.filter((state) => !ENDED.includes(state));
    assert.deepEqual(kept, ["created", "link_sent", "paid", "refund_due"]);
    for (const state of kept)
      assert.equal(retentionOf({ state, updatedAt: new Date(0) }, before), "keep", state);
  });

  test("an ended order last changed before the cutoff goes: deleted if never paid, else its tombstone", () => {
    const decided = Object.fromEntries(
      ENDED.map((state) => [state, retentionOf({ state, updatedAt: older }, before)]),
    );
    assert.deepEqual(decided, {
      expired: "delete",
      failed: "delete",
      cancelled: "delete",
      shipped: "tombstone",
      refunded: "tombstone",
    });
    // The tombstone is what an erase keeps: exactly the paid states among the ended ones.
    for (const state of ENDED) assert.equal(decided[state] === "tombstone", PAID.includes(state), state);
  });

  test("an ended order changed at the cutoff or after is kept", () => {
    for (const state of ENDED) {
      assert.equal(retentionOf({ state, updatedAt: before }, before), "keep", state);
      assert.equal(retentionOf({ state, updatedAt: newer }, before), "keep", state);
    }
  });

  test("a refunded order is final; the other ended states are left only by a session, a payment, a cancel or a refund", () => {
    // What the retention's minimum (8 days) rules out: a session lives a day, a webhook is retried
    // for 3 days, a request stays on its topic for 7; a refund of a shipped order finds its tombstone.
    const leaving = Object.entries(TRANSITIONS)
      .filter(([, rule]) => rule.from.some((state) => ENDED.includes(state)))
      .map(([change]) => change)
      .sort();
    assert.deepEqual(leaving, ["cancel", "open_session", "pay", "pay_cancelled", "refund"]);
    assert.ok(Object.values(TRANSITIONS).every((rule) => !rule.from.includes("refunded")));
  });
});

describe("which deliveries to the shop the retention forgets", () => {
  test("one the shop accepted before the cutoff", () => {
    assert.equal(deliveryExpired({ state: "delivered", deliveredAt: older }, before), true);
    assert.equal(deliveryExpired({ state: "delivered", deliveredAt: before }, before), false);
    assert.equal(deliveryExpired({ state: "delivered", deliveredAt: newer }, before), false);
  });

  test("never one not accepted: it is still retried, or waits for the orders CLI", () => {
    for (const state of ["pending", "no_endpoint"])
      assert.equal(deliveryExpired({ state, deliveredAt: new Date(0) }, before), false, state);
    assert.equal(deliveryExpired({ state: "delivered" }, before), false);
  });
});

test("the cutoff is the retention's days before now", () => {
  assert.deepEqual(retentionCutoff(new Date("2025-06-01T12:00:00Z"), 90), new Date("2025-03-03T12:00:00Z"));
  assert.deepEqual(retentionCutoff(before, 8), new Date(before.getTime() - 8 * DAY));
});

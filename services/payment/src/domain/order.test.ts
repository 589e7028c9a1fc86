import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type Change,
  canChange,
  decideEvent,
  ORDER_STATES,
  type OrderState,
  type ProviderEvent,
  planRequest,
  sessionKey,
  TRANSITIONS,
} from "./order.ts";

const event = (kind: ProviderEvent["kind"], sessionId = "s2"): ProviderEvent => ({
  id: "evt",
  kind,
  sessionId,
});

describe("order transitions", () => {
  test("the table: exactly these changes are allowed", () => {
    const allowed = ORDER_STATES.flatMap((state) =>
      (Object.keys(TRANSITIONS) as Change[])
        .filter((change) => canChange(state, change))
        .map((change) => `${state} -${change}-> ${TRANSITIONS[change].to}`),
    );
    assert.deepEqual(allowed.sort(), [
      "created -open_session-> link_sent",
      "expired -open_session-> link_sent",
      "expired -pay-> paid",
      "failed -open_session-> link_sent",
      "failed -pay-> paid",
      "link_sent -expire-> expired",
      "link_sent -fail-> failed",
      "link_sent -pay-> paid",
      "paid -refund-> refunded",
    ]);
  });

  test("paid and refunded are final: nothing opens a session or pays again", () => {
    for (const state of ["paid", "refunded"] as OrderState[]) {
      assert.equal(canChange(state, "open_session"), false);
      assert.equal(canChange(state, "pay"), false);
      assert.equal(canChange(state, "expire"), false);
    }
  });
});

describe("a payment request", () => {
  test("opens a session only when none is open; otherwise restates the order", () => {
    assert.deepEqual(planRequest("created"), { type: "open_session" });
    assert.deepEqual(planRequest("expired"), { type: "open_session" });
    assert.deepEqual(planRequest("failed"), { type: "open_session" });
    assert.deepEqual(planRequest("link_sent"), { type: "resend_link" });
    assert.deepEqual(planRequest("paid"), { type: "resend_succeeded" });
    assert.equal(planRequest("refunded").type, "refuse");
  });

  test("the first session's idempotency key is the order id; retries get their own", () => {
    assert.equal(sessionKey("c/j1/r1/d2", 1), "c/j1/r1/d2");
    assert.equal(sessionKey("c/j1/r1/d2", 2), "c/j1/r1/d2#2");
    assert.notEqual(sessionKey("o", 2), sessionKey("o", 3));
  });
});

describe("a provider event", () => {
  test("payment of the open session pays the order", () => {
    assert.deepEqual(decideEvent({ state: "link_sent", sessionId: "s2" }, event("paid")), {
      type: "apply",
      change: "pay",
    });
  });

  test("the same payment again is a duplicate; another session's payment is a double charge", () => {
    const paid = { state: "paid" as const, sessionId: "s2", paidSessionId: "s2" };
    assert.deepEqual(decideEvent(paid, event("paid")), { type: "duplicate" });
    assert.deepEqual(decideEvent(paid, event("paid", "s1")), { type: "double_charge" });
  });

  test("an old session's expiry or failure does not touch the session that replaced it", () => {
    assert.deepEqual(decideEvent({ state: "link_sent", sessionId: "s2" }, event("expired", "s1")), {
      type: "stale",
    });
    assert.deepEqual(decideEvent({ state: "link_sent", sessionId: "s2" }, event("failed", "s1")), {
      type: "stale",
    });
  });

  test("expiry of the open session expires the order, once", () => {
    assert.deepEqual(decideEvent({ state: "link_sent", sessionId: "s2" }, event("expired")), {
      type: "apply",
      change: "expire",
    });
    assert.deepEqual(decideEvent({ state: "expired", sessionId: "s2" }, event("expired")), {
      type: "duplicate",
    });
  });

  test("a paid order ignores a late expiry; an ended session cannot be paid, an older one can", () => {
    assert.deepEqual(decideEvent({ state: "paid", sessionId: "s2", paidSessionId: "s2" }, event("expired")), {
      type: "stale",
    });
    assert.deepEqual(decideEvent({ state: "expired", sessionId: "s2" }, event("paid")), { type: "stale" });
    assert.deepEqual(decideEvent({ state: "failed", sessionId: "s2" }, event("paid")), { type: "stale" });
    assert.deepEqual(decideEvent({ state: "expired", sessionId: "s2" }, event("paid", "s1")), {
      type: "apply",
      change: "pay",
    });
  });
});

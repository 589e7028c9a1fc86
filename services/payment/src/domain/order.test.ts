import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type CancelReason,
  type Change,
  canChange,
  decideEvent,
  ORDER_STATES,
  type OrderView,
  PAID,
  type ProviderEvent,
  planCancel,
  planRequest,
  refundKey,
  sessionKey,
  TRANSITIONS,
} from "./order.ts";

const event = (kind: ProviderEvent["kind"], sessionId = "s2"): ProviderEvent => ({
  id: "evt",
  kind,
  sessionId,
});

/** Every state an order can be in, a cancelled one once per reason. */
const VIEWS: { name: string; view: OrderView }[] = ORDER_STATES.flatMap(
  (state): { name: string; view: OrderView }[] => {
    const base: OrderView = {
      state,
      ...(state === "created" ? {} : { sessionId: "s2" }),
      ...(PAID.includes(state) ? { paidSessionId: "s2" } : {}),
    };
    return state === "cancelled"
      ? (["shopper", "replaced"] as CancelReason[]).map((cancelReason) => ({
          name: `cancelled(${cancelReason})`,
          view: { ...base, cancelReason },
        }))
      : [{ name: state, view: base }];
  },
);

describe("order transitions", () => {
  test("the table: exactly these changes are allowed", () => {
    const allowed = VIEWS.flatMap(({ name, view }) =>
      (Object.keys(TRANSITIONS) as Change[])
        .filter((change) => canChange(view.state, change, view.cancelReason))
        .map((change) => `${name} -${change}-> ${TRANSITIONS[change].to}`),
    );
    assert.deepEqual(allowed.sort(), [
      "cancelled(replaced) -pay-> paid",
      "cancelled(shopper) -pay_cancelled-> refund_due",
      "created -cancel-> cancelled",
      "created -open_session-> link_sent",
      "expired -cancel-> cancelled",
      "expired -open_session-> link_sent",
      "expired -pay-> paid",
      "failed -cancel-> cancelled",
      "failed -open_session-> link_sent",
      "failed -pay-> paid",
      "link_sent -cancel-> cancelled",
      "link_sent -expire-> expired",
      "link_sent -fail-> failed",
      "link_sent -pay-> paid",
      "paid -refund-> refund_due",
      "paid -ship-> shipped",
      "refund_due -complete_refund-> refunded",
      "shipped -refund-> refund_due",
    ]);
  });

  test("nothing opens a session on a paid, cancelled or refunded order, nor pays it again", () => {
    for (const { view } of VIEWS.filter(
      (v) => !["created", "link_sent", "expired", "failed"].includes(v.name),
    )) {
      assert.equal(canChange(view.state, "open_session", view.cancelReason), false, view.state);
      assert.equal(canChange(view.state, "expire", view.cancelReason), false, view.state);
      assert.equal(canChange(view.state, "cancel", view.cancelReason), false, view.state);
    }
    for (const state of PAID) {
      assert.equal(canChange(state, "pay"), false);
      assert.equal(canChange(state, "pay_cancelled"), false);
    }
  });

  test("only a paid order ships, once; a shipped order can still be refunded by the shop", () => {
    assert.deepEqual(
      ORDER_STATES.filter((s) => canChange(s, "ship")),
      ["paid"],
    );
    assert.deepEqual(
      ORDER_STATES.filter((s) => canChange(s, "refund")),
      ["paid", "shipped"],
    );
    assert.equal(canChange("shipped", "ship"), false);
  });
});

describe("a payment request", () => {
  test("opens a session only when none is open; otherwise restates the order", () => {
    assert.deepEqual(Object.fromEntries(ORDER_STATES.map((s) => [s, planRequest(s)])), {
      created: { type: "open_session" },
      link_sent: { type: "resend_link" },
      paid: { type: "resend_succeeded" },
      shipped: { type: "resend_succeeded" },
      expired: { type: "open_session" },
      failed: { type: "open_session" },
      cancelled: { type: "refuse", reason: "order cancelled" },
      refund_due: { type: "refuse", reason: "order refunded" },
      refunded: { type: "refuse", reason: "order refunded" },
    });
  });

  test("the provider's keys are built from the order number: one per session attempt, one refund", () => {
    assert.equal(sessionKey("7KQ2-M9XD", 1), "7KQ2-M9XD");
    assert.equal(sessionKey("7KQ2-M9XD", 2), "7KQ2-M9XD#2");
    assert.notEqual(sessionKey("7KQ2-M9XD", 2), sessionKey("7KQ2-M9XD", 3));
    assert.equal(refundKey("7KQ2-M9XD"), "refund:7KQ2-M9XD");
  });
});

describe("a cancellation", () => {
  test("cancels what is not paid, closes again what it cancelled, leaves paid orders alone", () => {
    assert.deepEqual(Object.fromEntries(ORDER_STATES.map((s) => [s, planCancel(s).type])), {
      created: "cancel",
      link_sent: "cancel",
      paid: "too_late",
      shipped: "too_late",
      expired: "cancel",
      failed: "cancel",
      cancelled: "close_again",
      refund_due: "too_late",
      refunded: "too_late",
    });
    for (const state of ORDER_STATES)
      assert.equal(planCancel(state).type === "cancel", canChange(state, "cancel"), state);
  });
});

describe("a provider event", () => {
  test("the whole table: every state, each event of the current session and of an older one", () => {
    const rows = VIEWS.map(({ name, view }) => {
      const cells = (["paid", "expired", "failed"] as const).flatMap((kind) =>
        ["s2", "s1"].map((session) => {
          const d = decideEvent(view, event(kind, session));
          return d.type === "apply" ? d.change : d.type;
        }),
      );
      return `${name}: ${cells.join(" ")}`;
    });
    // Columns: paid(current) paid(older) expired(current) expired(older) failed(current) failed(older)
    assert.deepEqual(rows, [
      // No session yet: nothing a provider says is about this order's checkout.
      "created: stale stale stale stale stale stale",
      "link_sent: pay pay expire stale fail stale",
      "paid: duplicate double_charge stale stale stale stale",
      "shipped: duplicate double_charge stale stale stale stale",
      // An ended session cannot be paid; an older one's late payment still pays the order.
      "expired: stale pay duplicate stale stale stale",
      "failed: stale pay stale stale duplicate stale",
      // A payment that lands after "cancel" is refunded; after a replacement it is kept.
      "cancelled(shopper): pay_cancelled pay_cancelled stale stale stale stale",
      "cancelled(replaced): pay pay stale stale stale stale",
      "refund_due: duplicate double_charge stale stale stale stale",
      "refunded: duplicate double_charge stale stale stale stale",
    ]);
  });

  test("every change a decision applies is allowed by the table from that state", () => {
    for (const { view } of VIEWS)
      for (const kind of ["paid", "expired", "failed"] as const)
        for (const session of ["s1", "s2"]) {
          const d = decideEvent(view, event(kind, session));
          if (d.type === "apply") assert.ok(canChange(view.state, d.change, view.cancelReason));
        }
  });

  test("one open session, charged once: after any payment, only a duplicate or a double charge", () => {
    for (const state of PAID) {
      const view = { state, sessionId: "s2", paidSessionId: "s2" };
      assert.deepEqual(decideEvent(view, event("paid")), { type: "duplicate" });
      assert.deepEqual(decideEvent(view, event("paid", "s1")), { type: "double_charge" });
    }
  });

  test("a cancelled order without a recorded reason refunds: keeping money needs a reason", () => {
    assert.deepEqual(decideEvent({ state: "cancelled", sessionId: "s2" }, event("paid")), {
      type: "apply",
      change: "pay_cancelled",
    });
    assert.equal(canChange("cancelled", "pay_cancelled"), true);
    assert.equal(canChange("cancelled", "pay"), false);
  });
});

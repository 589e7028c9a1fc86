/**
 * An order's life as a pure transition table. An order is created by the first payment request for
 * its id, gets a checkout session (link_sent), and ends paid, expired, failed or refunded. Expired
 * and failed are not final for the shopper: a new "buy" opens a new session for the same order, so
 * the order can still be paid once, and only once. Every change is applied by the store as one
 * conditional update whose filter is `from` (and the version read): two writers cannot both win.
 */
export type OrderState = "created" | "link_sent" | "paid" | "expired" | "failed" | "refunded";

export const ORDER_STATES: readonly OrderState[] = [
  "created",
  "link_sent",
  "paid",
  "expired",
  "failed",
  "refunded",
];

export type Change = "open_session" | "pay" | "expire" | "fail" | "refund";

interface Rule {
  from: readonly OrderState[];
  to: OrderState;
  /** Only an event about the order's current session may make this change. */
  currentSessionOnly: boolean;
}

export const TRANSITIONS: Record<Change, Rule> = {
  // A new session only when none is open: one open session per order is what keeps a second
  // charge impossible.
  open_session: { from: ["created", "expired", "failed"], to: "link_sent", currentSessionOnly: false },
  // Money taken on any other session of the order pays it, even one we thought over: the shopper paid.
  pay: { from: ["link_sent", "expired", "failed"], to: "paid", currentSessionOnly: false },
  // An old session's expiry says nothing about the session that replaced it.
  expire: { from: ["link_sent"], to: "expired", currentSessionOnly: true },
  fail: { from: ["link_sent"], to: "failed", currentSessionOnly: true },
  refund: { from: ["paid"], to: "refunded", currentSessionOnly: false },
};

export function canChange(state: OrderState, change: Change): boolean {
  return TRANSITIONS[change].from.includes(state);
}

/** What the service does with a payment request for an order in each state. */
export type RequestPlan =
  /** No open session: open one (the first, or a retry after expiry or failure). */
  | { type: "open_session" }
  /** A session is open: the same link again, never a second session. */
  | { type: "resend_link" }
  /** Already paid: say so again; nothing is charged. */
  | { type: "resend_succeeded" }
  /** Refunded: the order is over; the conversation is told it failed. */
  | { type: "refuse"; reason: string };

export function planRequest(state: OrderState): RequestPlan {
  switch (state) {
    case "created":
    case "expired":
    case "failed":
      return { type: "open_session" };
    case "link_sent":
      return { type: "resend_link" };
    case "paid":
      return { type: "resend_succeeded" };
    case "refunded":
      return { type: "refuse", reason: "order refunded" };
  }
}

/** A provider's event, reduced to what moves an order (domain/provider-event.ts maps it). */
export interface ProviderEvent {
  /** The provider's event id: the idempotency key of the webhook (unique index). */
  id: string;
  kind: "paid" | "expired" | "failed";
  sessionId: string;
  /** From the session's metadata; the session record is the authority when both exist. */
  orderId?: string;
  reason?: string;
  /** The provider's payment reference (Stripe: the PaymentIntent id), needed to refund. */
  paymentRef?: string;
}

export interface OrderView {
  state: OrderState;
  sessionId?: string;
  paidSessionId?: string;
}

export type EventDecision =
  | { type: "apply"; change: Change }
  /** Already in the state this event leads to, by this same session: a redelivery. */
  | { type: "duplicate" }
  /** Paid already through another session: money taken twice, to be refunded by a person. */
  | { type: "double_charge" }
  /** About a session that is no longer current, or an order past caring (e.g. expired after paid). */
  | { type: "stale" };

export function decideEvent(order: OrderView, event: ProviderEvent): EventDecision {
  const change: Change = event.kind === "paid" ? "pay" : event.kind === "expired" ? "expire" : "fail";
  const rule = TRANSITIONS[change];
  if (change === "pay" && (order.state === "paid" || order.state === "refunded")) {
    return order.paidSessionId === event.sessionId ? { type: "duplicate" } : { type: "double_charge" };
  }
  if (rule.currentSessionOnly && order.sessionId !== event.sessionId) return { type: "stale" };
  // A session that expired or failed cannot also be paid: a provider never does both, and the
  // local checkout's "Pay" racing its "Cancel" (or the sweeper) must lose, having charged nothing.
  if (change === "pay" && order.state !== "link_sent" && order.sessionId === event.sessionId)
    return { type: "stale" };
  if (order.state === rule.to) return { type: "duplicate" };
  if (!canChange(order.state, change)) return { type: "stale" };
  return { type: "apply", change };
}

/** The session attempt's idempotency key at the provider: the order id itself for the first. */
export function sessionKey(orderId: string, attempt: number): string {
  return attempt <= 1 ? orderId : `${orderId}#${attempt}`;
}

/**
 * An order's life as a pure transition table. An order is created by the first payment request for
 * its id, gets a checkout session (link_sent), and ends paid (then shipped by the shop), expired,
 * failed, cancelled or refunded. Expired and failed are not final for the shopper: a new "buy" opens a new session for
 * the same order, so the order can still be paid once, and only once. A cancelled order takes no
 * new session, but a payment that lands on it all the same is never ignored: kept if the order was
 * replaced by another, refunded (through refund_due) if the shopper cancelled it. Every change is
 * applied by the store as one claimed write (store.ts): two writers cannot both win.
 */
export type OrderState =
  | "created"
  | "link_sent"
  | "paid"
  | "shipped"
  | "expired"
  | "failed"
  | "cancelled"
  | "refund_due"
  | "refunded";

export const ORDER_STATES: readonly OrderState[] = [
  "created",
  "link_sent",
  "paid",
  "shipped",
  "expired",
  "failed",
  "cancelled",
  "refund_due",
  "refunded",
];

/** Why the conversation cancelled an order (payment.v1.CancelReason). */
export type CancelReason = "shopper" | "replaced";

/** Why money went back (payment.v1.RefundReason). */
export type RefundReason = "cancelled_before_payment" | "by_shop";

export type Change =
  | "open_session"
  | "pay"
  | "pay_cancelled"
  | "expire"
  | "fail"
  | "cancel"
  | "ship"
  | "refund"
  | "complete_refund";

interface Rule {
  from: readonly OrderState[];
  to: OrderState;
  /** Only an event about the order's current session may make this change. */
  currentSessionOnly: boolean;
  /** From `cancelled`, only for an order cancelled for this reason. */
  cancelledFor?: CancelReason;
}

export const TRANSITIONS: Record<Change, Rule> = {
  // A new session only when none is open: one open session per order is what keeps a second
  // charge impossible. A cancelled order gets none: the shopper no longer wants it.
  open_session: { from: ["created", "expired", "failed"], to: "link_sent", currentSessionOnly: false },
  // Money taken on any session of the order pays it, even one we thought over: the shopper paid.
  // A replaced order is still a gift the shopper chose, so it is kept and confirmed.
  pay: {
    from: ["link_sent", "expired", "failed", "cancelled"],
    to: "paid",
    currentSessionOnly: false,
    cancelledFor: "replaced",
  },
  // The shopper said "cancel" and the money landed anyway (the link was paid before it closed):
  // it goes back. refund_due is the claim; the provider refund follows, then refunded.
  pay_cancelled: {
    from: ["cancelled"],
    to: "refund_due",
    currentSessionOnly: false,
    cancelledFor: "shopper",
  },
  // An old session's expiry says nothing about the session that replaced it.
  expire: { from: ["link_sent"], to: "expired", currentSessionOnly: true },
  fail: { from: ["link_sent"], to: "failed", currentSessionOnly: true },
  // Anything not paid can be cancelled; a paid order stays paid (the payment landed first).
  cancel: { from: ["created", "link_sent", "expired", "failed"], to: "cancelled", currentSessionOnly: false },
  // The shop sent the gift (the orders CLI, or the shop's signed call).
  ship: { from: ["paid"], to: "shipped", currentSessionOnly: false },
  // The shop gives the money back (internal API), even for a gift already sent (lost, returned).
  refund: { from: ["paid", "shipped"], to: "refund_due", currentSessionOnly: false },
  // The provider confirmed the refund.
  complete_refund: { from: ["refund_due"], to: "refunded", currentSessionOnly: false },
};

/**
 * Whether `change` may be made from `state`. A cancellation without a recorded reason counts as the
 * shopper's: keeping money needs a reason, giving it back does not.
 */
export function canChange(state: OrderState, change: Change, cancelReason?: CancelReason): boolean {
  const rule = TRANSITIONS[change];
  if (!rule.from.includes(state)) return false;
  if (state !== "cancelled" || rule.cancelledFor === undefined) return true;
  return rule.cancelledFor === (cancelReason ?? "shopper");
}

/** What the service does with a payment request for an order in each state. */
export type RequestPlan =
  /** No open session: open one (the first, or a retry after expiry or failure). */
  | { type: "open_session" }
  /** A session is open: the same link again, never a second session. */
  | { type: "resend_link" }
  /** Already paid (or shipped): say so again; nothing is charged. */
  | { type: "resend_succeeded" }
  /** Cancelled or refunded: the order is over; the conversation is told it failed. */
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
    case "shipped":
      return { type: "resend_succeeded" };
    // The conversation asks again only for the order it has open, and it cancelled this one.
    case "cancelled":
      return { type: "refuse", reason: "order cancelled" };
    case "refund_due":
    case "refunded":
      return { type: "refuse", reason: "order refunded" };
  }
}

/** What the service does with a CancelOrder for an order in each state. */
export type CancelPlan =
  /** Not paid: cancel it and close its session at the provider. */
  | { type: "cancel" }
  /** Cancelled before (a redelivery): close the session again, in case that failed last time. */
  | { type: "close_again" }
  /** The payment landed first: nothing changes; the conversation hears "succeeded" as usual. */
  | { type: "too_late" };

export function planCancel(state: OrderState): CancelPlan {
  switch (state) {
    case "created":
    case "link_sent":
    case "expired":
    case "failed":
      return { type: "cancel" };
    case "cancelled":
      return { type: "close_again" };
    case "paid":
    case "shipped":
    case "refund_due":
    case "refunded":
      return { type: "too_late" };
  }
}

/** A provider's event, reduced to what moves an order (domain/provider-event.ts maps it). */
export interface ProviderEvent {
  /** The provider's event id: the idempotency key of the webhook (unique index). */
  id: string;
  kind: "paid" | "expired" | "failed";
  sessionId: string;
  /** From the session's metadata; the session record is the authority when both exist. */
  orderNumber?: string;
  reason?: string;
  /** The provider's payment reference (Stripe: the PaymentIntent id), needed to refund. */
  paymentRef?: string;
}

export interface OrderView {
  state: OrderState;
  sessionId?: string;
  paidSessionId?: string;
  cancelReason?: CancelReason;
}

export type EventDecision =
  | { type: "apply"; change: Change }
  /** Already in the state this event leads to, by this same session: a redelivery. */
  | { type: "duplicate" }
  /** Paid already through another session: money taken twice, to be refunded by a person. */
  | { type: "double_charge" }
  /** About a session that is no longer current, or an order past caring (e.g. expired after paid). */
  | { type: "stale" };

/** The states of an order whose money was taken (whatever happened after). */
export const PAID: readonly OrderState[] = ["paid", "shipped", "refund_due", "refunded"];

export function decideEvent(order: OrderView, event: ProviderEvent): EventDecision {
  if (event.kind === "paid") {
    if (PAID.includes(order.state))
      return order.paidSessionId === event.sessionId ? { type: "duplicate" } : { type: "double_charge" };
    // Money taken after the order was cancelled (on the session we were closing, or an older one):
    // a successful payment is never ignored. Refunded unless the order was only replaced.
    if (order.state === "cancelled")
      return {
        type: "apply",
        change: canChange("cancelled", "pay", order.cancelReason) ? "pay" : "pay_cancelled",
      };
    // A session that expired or failed cannot also be paid: a provider never does both, and the
    // local checkout's "Pay" racing its "Cancel" (or the sweeper) must lose, having charged nothing.
    if (order.state !== "link_sent" && order.sessionId === event.sessionId) return { type: "stale" };
    return canChange(order.state, "pay") ? { type: "apply", change: "pay" } : { type: "stale" };
  }
  const change: Change = event.kind === "expired" ? "expire" : "fail";
  const rule = TRANSITIONS[change];
  if (rule.currentSessionOnly && order.sessionId !== event.sessionId) return { type: "stale" };
  if (order.state === rule.to) return { type: "duplicate" };
  return canChange(order.state, change) ? { type: "apply", change } : { type: "stale" };
}

/** The session attempt's idempotency key at the provider: the order number itself for the first. */
export function sessionKey(orderNumber: string, attempt: number): string {
  return attempt <= 1 ? orderNumber : `${orderNumber}#${attempt}`;
}

/** The refund's idempotency key at the provider: one refund per order, whoever asks for it. */
export function refundKey(orderNumber: string): string {
  return `refund:${orderNumber}`;
}

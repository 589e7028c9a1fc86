import { type OrderState, PAID } from "./order.ts";

/**
 * The states an order ends in (see the transition table in order.ts): never paid (expired, failed,
 * cancelled) or paid and done with (shipped, refunded). Expired, failed and cancelled are left by a
 * new session or a late payment, and shipped by a refund, but none of that can come once the order
 * has been left alone for the retention (PAYMENT_RETENTION_DAYS, at least 8 days): a session lives
 * at most a day, a provider redelivers a webhook for at most 3 days and the topics keep a request
 * for 7. Not ended: `created` and `link_sent` (on their way to a session's end, moved on within a
 * day), `paid` (the shop may still need the address to send the gift) and `refund_due` (money is
 * owed to the shopper).
 */
export const ENDED: readonly OrderState[] = ["expired", "failed", "cancelled", "shipped", "refunded"];

/**
 * What the retention does with an order: `keep` it, `delete` it with everything of it (never paid,
 * as an erase does), or keep its `tombstone` (paid: the shop's accounts may need it, as an erase
 * keeps it).
 */
export type RetentionAction = "keep" | "delete" | "tombstone";

/** An order that ended with its last change before `before` is forgotten; any other is kept. */
export function retentionOf(order: { state: OrderState; updatedAt: Date }, before: Date): RetentionAction {
  if (!ENDED.includes(order.state) || order.updatedAt.getTime() >= before.getTime()) return "keep";
  return PAID.includes(order.state) ? "tombstone" : "delete";
}

/**
 * Whether a delivery to the shop is past the retention: accepted by the shop before `before`. One
 * never accepted has no end (it is retried until the shop takes it, or waits for the orders CLI).
 */
export function deliveryExpired(delivery: { state: string; deliveredAt?: Date }, before: Date): boolean {
  return (
    delivery.state === "delivered" &&
    delivery.deliveredAt !== undefined &&
    delivery.deliveredAt.getTime() < before.getTime()
  );
}

/** What was last changed (or delivered) before this is past a retention of `days` days at `now`. */
export function retentionCutoff(now: Date, days: number): Date {
  return new Date(now.getTime() - days * 24 * 3600 * 1000);
}

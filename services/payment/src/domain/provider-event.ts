import type { ProviderEvent } from "./order.ts";
import { readOrderNumber } from "./order-number.ts";

/**
 * The part of a Stripe event this service reads. The local provider emits the same shape, so
 * both go through one mapping and one handler.
 */
export interface CheckoutEventLike {
  id: string;
  type: string;
  data: {
    object: {
      id?: string;
      client_reference_id?: string | null;
      metadata?: Record<string, string> | null;
      payment_status?: string;
      payment_intent?: string | { id: string } | null;
    };
  };
}

export type Mapped = { type: "event"; event: ProviderEvent } | { type: "ignored"; why: string };

/**
 * checkout.session.completed pays the order once the money is there (payment_status "paid";
 * "unpaid" means an asynchronous method such as a bank debit is still on its way, and
 * checkout.session.async_payment_succeeded or …_failed follows). expired and async_payment_failed
 * end the session. Every other event type is acknowledged and ignored.
 */
export function mapCheckoutEvent(event: CheckoutEventLike): Mapped {
  const session = event.data?.object ?? {};
  if (!session.id) return { type: "ignored", why: "no session id" };
  // The order number we sent (metadata, client_reference_id); anything else there is not ours.
  const orderNumber =
    readOrderNumber(session.metadata?.order_number) ?? readOrderNumber(session.client_reference_id);
  const base = { id: event.id, sessionId: session.id, ...(orderNumber ? { orderNumber } : {}) };
  const intent = session.payment_intent;
  const paymentRef = typeof intent === "string" ? intent : (intent?.id ?? undefined);
  switch (event.type) {
    case "checkout.session.completed":
      if (session.payment_status !== "paid" && session.payment_status !== "no_payment_required")
        return { type: "ignored", why: `completed with payment_status ${session.payment_status}` };
      return { type: "event", event: { ...base, kind: "paid", ...(paymentRef ? { paymentRef } : {}) } };
    case "checkout.session.async_payment_succeeded":
      return { type: "event", event: { ...base, kind: "paid", ...(paymentRef ? { paymentRef } : {}) } };
    case "checkout.session.expired":
      return { type: "event", event: { ...base, kind: "expired" } };
    case "checkout.session.async_payment_failed":
      return { type: "event", event: { ...base, kind: "failed", reason: "payment failed" } };
    default:
      return { type: "ignored", why: `event type ${event.type}` };
  }
}

import { readEventId, readOrderNumberText, readPaymentRef, readSessionId } from "./ids.ts";
import type { ProviderEvent } from "./order.ts";

/**
 * The part of a Stripe event this service reads. The local provider emits the same shape, so
 * both go through one mapping and one handler. The types say what a provider sends; what arrives
 * is parsed JSON, so mapCheckoutEvent checks every value it passes on.
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

export type Mapped =
  | { type: "event"; event: ProviderEvent }
  | { type: "ignored"; why: string }
  /** Signed, but not what a provider sends: an id of another type or shape. Nothing is looked up. */
  | { type: "malformed"; why: string };

const KINDS: Record<string, ProviderEvent["kind"]> = {
  "checkout.session.completed": "paid",
  "checkout.session.async_payment_succeeded": "paid",
  "checkout.session.expired": "expired",
  "checkout.session.async_payment_failed": "failed",
};

/**
 * checkout.session.completed pays the order once the money is there (payment_status "paid";
 * "unpaid" means an asynchronous method such as a bank debit is still on its way, and
 * checkout.session.async_payment_succeeded or …_failed follows). expired and async_payment_failed
 * end the session. Every other event type is acknowledged and ignored.
 *
 * The event id, the session id and the payment reference must have their shapes
 * (domain/ids.ts); the order number the session names (its metadata and client_reference_id, both
 * ours) is carried for the handler to check against the session's order. A reference that is not
 * an order number names no order (another checkout of the account); two that disagree, or one
 * that is not text at all, make the event malformed.
 */
export function mapCheckoutEvent(event: CheckoutEventLike): Mapped {
  const kind = typeof event?.type === "string" ? KINDS[event.type] : undefined;
  if (!kind) return { type: "ignored", why: `event type ${String(event?.type)}` };
  const session: Record<string, unknown> = isObject(event.data?.object) ? event.data.object : {};
  if (session.id === undefined) return { type: "ignored", why: "no session id" };
  const id = readEventId(event.id);
  if (!id) return { type: "malformed", why: "event id" };
  const sessionId = readSessionId(session.id);
  if (!sessionId) return { type: "malformed", why: "session id" };

  const metadata = session.metadata ?? {};
  if (!isObject(metadata)) return { type: "malformed", why: "metadata" };
  const references = [metadata.order_number, session.client_reference_id];
  if (references.some((r) => r !== undefined && r !== null && typeof r !== "string"))
    return { type: "malformed", why: "order reference" };
  const numbers = new Set(references.flatMap((r) => readOrderNumberText(r) ?? []));
  if (numbers.size > 1) return { type: "malformed", why: "two order numbers" };
  const [orderNumber] = numbers;

  const intent = session.payment_intent;
  const rawRef = isObject(intent) ? intent.id : intent;
  const paymentRef = rawRef === undefined || rawRef === null ? undefined : readPaymentRef(rawRef);
  if (rawRef !== undefined && rawRef !== null && !paymentRef)
    return { type: "malformed", why: "payment intent" };

  const base = { id, sessionId, ...(orderNumber ? { orderNumber } : {}) };
  switch (kind) {
    case "paid":
      if (
        event.type === "checkout.session.completed" &&
        session.payment_status !== "paid" &&
        session.payment_status !== "no_payment_required"
      )
        return { type: "ignored", why: `completed with payment_status ${String(session.payment_status)}` };
      return { type: "event", event: { ...base, kind, ...(paymentRef ? { paymentRef } : {}) } };
    case "expired":
      return { type: "event", event: { ...base, kind } };
    case "failed":
      return { type: "event", event: { ...base, kind, reason: "payment failed" } };
  }
}

/**
 * Whether an event names an order other than the one its session belongs to: the session record
 * is the authority, and a signed event that disagrees with it (a forgery under a leaked local
 * secret, or a bug) changes nothing.
 */
export function namesAnotherOrder(event: Pick<ProviderEvent, "orderNumber">, orderNumber: string): boolean {
  return event.orderNumber !== undefined && event.orderNumber !== orderNumber;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

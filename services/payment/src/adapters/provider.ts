import type { PostalAddress } from "../domain/delivery.ts";
import type { CheckoutEventLike } from "../domain/provider-event.ts";

/**
 * What a provider needs to open a checkout for an order. No order id, conversation id, phone
 * number or BSUID: the provider knows the order by its number only (docs/payment.md, "What goes
 * to the provider"), and the address it ships to when it is posted.
 */
export interface SessionRequest {
  /** The order number (domain/order-number.ts), e.g. "7KQ2-M9XD". */
  orderNumber: string;
  /** 1 for the order's first session, 2 after the first expired or failed, … */
  attempt: number;
  /** The provider's idempotency key for this attempt (domain/order.ts sessionKey). */
  idempotencyKey: string;
  amount: number;
  currency: string;
  productName: string;
  expiresAt: Date;
  /** Where the gift is posted (none for a pickup), so the provider records and shows it. */
  shipping?: ShippingAddress;
}

export type ShippingAddress = PostalAddress;

export interface CreatedSession {
  id: string;
  url: string;
}

export interface RefundRequest {
  orderNumber: string;
  /** The provider's payment reference (Stripe: the PaymentIntent id). */
  paymentRef?: string;
  amount: number;
  /** domain/order.ts refundKey: one refund per order, however often it is asked for. */
  idempotencyKey: string;
}

/** The provider refused (bad request, auth): retrying the same call will not help. */
export class ProviderRefusal extends Error {
  override readonly name = "ProviderRefusal";
}

/** A webhook whose signature is missing, wrong or outside the tolerance window. */
export class WebhookSignatureError extends Error {
  override readonly name = "WebhookSignatureError";
}

/**
 * One payment provider. Every method that talks to the provider carries an idempotency key or is
 * idempotent by nature, so a retried call (a crash, a timeout) cannot open a second session or
 * refund twice.
 */
export interface PaymentProvider {
  readonly name: "local" | "stripe";
  /** Opens a checkout session. Throws ProviderRefusal for permanent failures; anything else is transient. */
  createSession(request: SessionRequest): Promise<CreatedSession>;
  /**
   * Closes an open session so that its link cannot be paid. "not_open": it had already ended
   * (completed, expired); a payment it took arrives as a webhook. Idempotent by nature.
   */
  expireSession(sessionId: string): Promise<"expired" | "not_open">;
  /** Checks the signature over the raw body and returns the event; throws WebhookSignatureError. */
  verifyWebhook(rawBody: Buffer, signature: string | undefined): CheckoutEventLike;
  /** Gives the money back for a paid order. */
  refund(request: RefundRequest): Promise<void>;
}

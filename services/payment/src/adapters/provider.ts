import type { CheckoutEventLike } from "../domain/provider-event.ts";

/** What a provider needs to open a checkout for an order. */
export interface SessionRequest {
  orderId: string;
  conversationId: string;
  /** 1 for the order's first session, 2 after the first expired or failed, … */
  attempt: number;
  /** The provider's idempotency key for this attempt (domain/order.ts sessionKey). */
  idempotencyKey: string;
  amount: number;
  currency: string;
  productName: string;
  expiresAt: Date;
}

export interface CreatedSession {
  id: string;
  url: string;
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
 * One payment provider. Every method that talks to the provider carries an idempotency key, so a
 * retried call (a crash, a timeout) cannot open a second session or refund twice.
 */
export interface PaymentProvider {
  readonly name: "local" | "stripe";
  /** Opens a checkout session. Throws ProviderRefusal for permanent failures; anything else is transient. */
  createSession(request: SessionRequest): Promise<CreatedSession>;
  /** Checks the signature over the raw body and returns the event; throws WebhookSignatureError. */
  verifyWebhook(rawBody: Buffer, signature: string | undefined): CheckoutEventLike;
  /** Gives the money back for a paid order. */
  refund(order: { orderId: string; paymentRef?: string; amount: number }): Promise<void>;
}

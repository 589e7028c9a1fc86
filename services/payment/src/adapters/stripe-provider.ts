import Stripe from "stripe";
import type { CheckoutEventLike } from "../domain/provider-event.ts";
import {
  type CreatedSession,
  type PaymentProvider,
  ProviderRefusal,
  type SessionRequest,
  WebhookSignatureError,
} from "./provider.ts";

export interface StripeProviderOptions {
  secretKey: string;
  webhookSecret: string;
  /** Where the shopper lands after paying or giving up (this service's public URL). */
  publicUrl: string | (() => string);
  toleranceSeconds: number;
  timeoutMs: number;
  /** Another API base URL (stripe-mock in tests). */
  apiUrl?: string;
}

/**
 * Stripe Checkout. Sessions are created with the attempt's idempotency key (the order id for the
 * first), so a retried create returns the same session instead of opening a second one; the
 * order id travels in the metadata and client_reference_id, and comes back in every webhook.
 */
export class StripeProvider implements PaymentProvider {
  readonly name = "stripe";
  readonly stripe: Stripe;
  readonly #options: StripeProviderOptions;

  constructor(options: StripeProviderOptions) {
    this.#options = options;
    const api = options.apiUrl ? new URL(options.apiUrl) : undefined;
    this.stripe = new Stripe(options.secretKey, {
      timeout: options.timeoutMs,
      // The SDK retries connection errors and 409/429/5xx itself, reusing the idempotency key.
      maxNetworkRetries: 2,
      ...(api
        ? {
            host: api.hostname,
            port: api.port || (api.protocol === "https:" ? 443 : 80),
            protocol: api.protocol === "https:" ? "https" : "http",
          }
        : {}),
    });
  }

  async createSession(request: SessionRequest): Promise<CreatedSession> {
    const base = this.#options.publicUrl;
    const back = `${typeof base === "string" ? base : base()}/checkout/return?order=${encodeURIComponent(request.orderId)}`;
    try {
      const session = await this.stripe.checkout.sessions.create(
        {
          mode: "payment",
          line_items: [
            {
              quantity: 1,
              price_data: {
                currency: request.currency.toLowerCase(),
                unit_amount: request.amount,
                product_data: { name: request.productName },
              },
            },
          ],
          client_reference_id: request.orderId,
          metadata: {
            order_id: request.orderId,
            conversation_id: request.conversationId,
            attempt: String(request.attempt),
          },
          payment_intent_data: { metadata: { order_id: request.orderId } },
          expires_at: Math.floor(request.expiresAt.getTime() / 1000),
          success_url: `${back}&result=paid`,
          cancel_url: `${back}&result=cancelled`,
        },
        { idempotencyKey: request.idempotencyKey },
      );
      if (!session.url) throw new ProviderRefusal(`Stripe returned session ${session.id} without a url`);
      return { id: session.id, url: session.url };
    } catch (error) {
      throw classifyStripeError(error);
    }
  }

  verifyWebhook(rawBody: Buffer, signature: string | undefined): CheckoutEventLike {
    if (!signature) throw new WebhookSignatureError("no Stripe-Signature header");
    try {
      return this.stripe.webhooks.constructEvent(
        rawBody,
        signature,
        this.#options.webhookSecret,
        this.#options.toleranceSeconds,
      ) as unknown as CheckoutEventLike;
    } catch (error) {
      if (error instanceof Stripe.errors.StripeSignatureVerificationError)
        throw new WebhookSignatureError(error.message);
      throw error;
    }
  }

  async refund(order: { orderId: string; paymentRef?: string; amount: number }): Promise<void> {
    if (!order.paymentRef)
      throw new ProviderRefusal(`order ${order.orderId} has no payment intent to refund`);
    try {
      await this.stripe.refunds.create(
        { payment_intent: order.paymentRef, amount: order.amount },
        { idempotencyKey: `refund:${order.orderId}` },
      );
    } catch (error) {
      throw classifyStripeError(error);
    }
  }
}

/**
 * 4xx other than 408, 409 and 429 means the request itself is wrong (or the key is): permanent.
 * Connection errors, timeouts and 5xx are transient, retried with the message.
 */
function classifyStripeError(error: unknown): Error {
  if (error instanceof ProviderRefusal) return error;
  if (error instanceof Stripe.errors.StripeError) {
    const status = error.statusCode;
    if (status !== undefined && status >= 400 && status < 500 && ![408, 409, 429].includes(status))
      return new ProviderRefusal(`Stripe ${status} ${error.type}: ${error.message}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

import Stripe from "stripe";
import { isOrderNumber } from "../domain/ids.ts";
import { refundKey, sessionKey } from "../domain/order.ts";
import type { CheckoutEventLike } from "../domain/provider-event.ts";
import {
  type CreatedSession,
  type PaymentProvider,
  ProviderRefusal,
  type RefundRequest,
  type SessionRequest,
  type ShippingAddress,
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
 * Stripe Checkout. Sessions are created with the attempt's idempotency key (the order number for
 * the first), so a retried create returns the same session instead of opening a second one. Stripe
 * knows an order by its number only: client_reference_id, the metadata, the payment's metadata,
 * the idempotency keys and the return URLs carry the order number and nothing that names the
 * shopper (no order id, conversation id, phone number or BSUID).
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
    onlyOrderNumber(
      request.orderNumber,
      request.idempotencyKey,
      sessionKey(request.orderNumber, request.attempt),
    );
    const base = this.#options.publicUrl;
    const back = `${typeof base === "string" ? base : base()}/checkout/return?order=${encodeURIComponent(request.orderNumber)}`;
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
          client_reference_id: request.orderNumber,
          metadata: { order_number: request.orderNumber, attempt: String(request.attempt) },
          payment_intent_data: {
            metadata: { order_number: request.orderNumber },
            ...(request.shipping ? { shipping: shippingOf(request.shipping) } : {}),
          },
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

  /**
   * Stripe expires only an open session and answers anything else (completed, expired, unknown)
   * with a 400 or 404: the session is closed either way, and if it completed, its webhook says so.
   */
  async expireSession(sessionId: string): Promise<"expired" | "not_open"> {
    try {
      await this.stripe.checkout.sessions.expire(sessionId);
      return "expired";
    } catch (error) {
      if (
        error instanceof Stripe.errors.StripeInvalidRequestError &&
        (error.statusCode === 400 || error.statusCode === 404)
      )
        return "not_open";
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

  async refund(request: RefundRequest): Promise<void> {
    onlyOrderNumber(request.orderNumber, request.idempotencyKey, refundKey(request.orderNumber));
    if (!request.paymentRef)
      throw new ProviderRefusal(`order ${request.orderNumber} has no payment intent to refund`);
    try {
      await this.stripe.refunds.create(
        {
          payment_intent: request.paymentRef,
          amount: request.amount,
          metadata: { order_number: request.orderNumber },
        },
        { idempotencyKey: request.idempotencyKey },
      );
    } catch (error) {
      throw classifyStripeError(error);
    }
  }
}

/**
 * Every reference that goes to Stripe (client_reference_id, metadata, idempotency keys, return
 * URLs) is built from the order number: anything else in its place (an order id holds the
 * shopper's phone number) is refused before a request is made, and not repeated in the error.
 */
function onlyOrderNumber(orderNumber: string, idempotencyKey: string, expectedKey: string): void {
  if (!isOrderNumber(orderNumber))
    throw new ProviderRefusal("not an order number: nothing was sent to Stripe");
  if (idempotencyKey !== expectedKey)
    throw new ProviderRefusal(`order ${orderNumber}: an idempotency key not of its number; nothing was sent`);
}

/** The payment's shipping details: recipient name and address, nothing else (no phone). */
function shippingOf(
  address: ShippingAddress,
): Stripe.Checkout.SessionCreateParams.PaymentIntentData.Shipping {
  return {
    name: address.name,
    address: {
      line1: address.line1,
      ...(address.line2 ? { line2: address.line2 } : {}),
      city: address.city,
      postal_code: address.postcode,
      country: address.country,
    },
  };
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

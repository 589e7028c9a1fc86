import { createHmac, randomBytes } from "node:crypto";
import type { CheckoutEventLike } from "../domain/provider-event.ts";
import { signPayload, verifySignature } from "../domain/signature.ts";
import {
  type CreatedSession,
  type PaymentProvider,
  type SessionRequest,
  WebhookSignatureError,
} from "./provider.ts";

/** Header carrying the local provider's signature, in Stripe's `t=…,v1=…` format. */
export const LOCAL_SIGNATURE_HEADER = "taituri-signature";

export type LocalEventType = "checkout.session.completed" | "checkout.session.expired";

/**
 * The local provider: the checkout page is served by this service (adapters/checkout-page.ts),
 * and what happens on it comes back as signed, Stripe-shaped webhook events through the same
 * handler a real provider's events take. Nothing is charged anywhere.
 *
 * A session id is 192 random bits (`lcs_` and 32 base64url characters): a checkout link leads to
 * its own order only, and nothing about an order (its number, the webhook secret, which may be the
 * public development default) gives its session id. A retried "open a session" keeps one session
 * through the order's session record (payments.ts openSession, store.sessionFor), not through the
 * id. Event ids are an HMAC of the secret over the session id and the event type: a second click
 * on "Pay" gives the same event, which the event index drops.
 */
export class LocalProvider implements PaymentProvider {
  readonly name = "local";
  readonly #secret: string;
  readonly #publicUrl: () => string;
  readonly #toleranceSeconds: number;

  /** `publicUrl`: the base of checkout links, or a function giving it once the server listens. */
  constructor(options: { secret: string; publicUrl: string | (() => string); toleranceSeconds: number }) {
    this.#secret = options.secret;
    const url = options.publicUrl;
    this.#publicUrl = typeof url === "string" ? () => url : url;
    this.#toleranceSeconds = options.toleranceSeconds;
  }

  async createSession(_request: SessionRequest): Promise<CreatedSession> {
    const id = `lcs_${randomBytes(24).toString("base64url")}`;
    return { id, url: `${this.#publicUrl()}/checkout/${id}` };
  }

  /**
   * Nothing to call: the checkout page is ours, and its payable check refuses a session whose
   * order is no longer link_sent (cancelled included).
   */
  async expireSession(): Promise<"expired"> {
    return "expired";
  }

  /**
   * The signed event the checkout page (or the expiry sweep) delivers to the webhook. Like
   * Stripe's, it knows the order by its number only.
   */
  signedEvent(
    type: LocalEventType,
    session: { id: string; orderNumber: string },
    nowSeconds = Math.floor(Date.now() / 1000),
  ): { body: string; signature: string } {
    const event: CheckoutEventLike & { object: string; created: number } = {
      id: `evt_local_${this.#mac(`event:${session.id}:${type}`)}`,
      object: "event",
      type,
      created: nowSeconds,
      data: {
        object: {
          id: session.id,
          client_reference_id: session.orderNumber,
          metadata: { order_number: session.orderNumber },
          payment_status: type === "checkout.session.completed" ? "paid" : "unpaid",
          payment_intent:
            type === "checkout.session.completed" ? `lpi_${this.#mac(`intent:${session.id}`)}` : null,
        },
      },
    };
    const body = JSON.stringify(event);
    return { body, signature: signPayload(body, this.#secret, nowSeconds) };
  }

  verifyWebhook(rawBody: Buffer, signature: string | undefined): CheckoutEventLike {
    const check = verifySignature(rawBody, signature, this.#secret, {
      toleranceSeconds: this.#toleranceSeconds,
      nowSeconds: Math.floor(Date.now() / 1000),
    });
    if (!check.ok) throw new WebhookSignatureError(`signature ${check.reason}`);
    try {
      return JSON.parse(rawBody.toString("utf8")) as CheckoutEventLike;
    } catch {
      throw new WebhookSignatureError("signed body is not JSON");
    }
  }

  /** No money moved, so none goes back. */
  async refund(): Promise<void> {}

  #mac(input: string): string {
    return createHmac("sha256", this.#secret).update(input).digest("base64url").slice(0, 32);
  }
}

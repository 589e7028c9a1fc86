import type { Logger } from "@taituri/logging";
import { asTransient, type ImageStore } from "@taituri/mongo";
import { AuthError, type Verifier } from "@taituri/oidc";
import { contracts } from "@taituri/proto";
import { SpanKind, withSpan } from "@taituri/telemetry";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from "fastify";
import {
  LOCAL_SIGNATURE_HEADER,
  type LocalEventType,
  type LocalProvider,
} from "./adapters/local-provider.ts";
import { type PaymentProvider, ProviderRefusal, WebhookSignatureError } from "./adapters/provider.ts";
import type { OrderDoc, PaymentStore } from "./adapters/store.ts";
import { decideInternal, type InternalAccess, type InternalRoute, internalRefusal } from "./domain/access.ts";
import { deliveryLines } from "./domain/delivery.ts";
import { readLocalSessionId, readOrderId, readOrderNumberText } from "./domain/ids.ts";
import { PAID } from "./domain/order.ts";
import type { Metrics } from "./metrics.ts";
import type { Payments } from "./payments.ts";

export interface PaymentAppDeps {
  payments: Payments;
  provider: PaymentProvider;
  /** Set when the provider is the local one: the checkout page is served. */
  local?: LocalProvider;
  store: PaymentStore;
  images: ImageStore;
  verifier: Verifier;
  /** Who may call which internal route (config: PAYMENT_INTERNAL_CALLERS, PAYMENT_ADMIN_*). */
  access: InternalAccess;
  metrics: Metrics;
  logger: Logger;
  /** Fastify's timeouts for the public listener (httpListenerOptions of @taituri/config). */
  listener?: FastifyServerOptions;
}

/**
 * The payment service's public HTTP surface (its ops endpoints have a listener of their own,
 * service.ts; here any other path is a 404):
 * - POST /payments/webhooks/<provider>: the provider's signed events (public; the signature over
 *   the raw body is the authentication, so the body is kept as bytes);
 * - /checkout/<session>: the local provider's checkout page (public; the session id is 192
 *   random bits), whose "Pay" and "Cancel" become signed events delivered to the webhook above;
 * - /internal/orders/<id or number> and …/refund: for the callers in PAYMENT_INTERNAL_CALLERS with
 *   an OIDC token, a refund with the admin scope too (domain/access.ts).
 */
export function buildPaymentApp(deps: PaymentAppDeps): FastifyInstance {
  const { payments, provider, metrics, logger } = deps;
  const app = Fastify({ ...deps.listener, logger: false, bodyLimit: 256 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));

  app.setErrorHandler((error: { statusCode?: number; message: string }, request, reply) => {
    const status = error.statusCode && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) logger.error({ err: error, url: request.url }, "unhandled error");
    // A 5xx makes a provider deliver the webhook again later, which is what a store outage needs.
    return reply.code(status).send({ error: status === 500 ? "internal error" : error.message });
  });

  app.post<{ Params: { provider: string } }>("/payments/webhooks/:provider", async (request, reply) => {
    if (request.params.provider !== provider.name) return reply.code(404).send({ error: "no such provider" });
    const header =
      provider.name === "stripe"
        ? request.headers["stripe-signature"]
        : request.headers[LOCAL_SIGNATURE_HEADER];
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    return withSpan(
      "@taituri/payment",
      `webhook ${provider.name}`,
      { kind: SpanKind.SERVER, attributes: { "payment.provider": provider.name } },
      async (span) => {
        let event: ReturnType<PaymentProvider["verifyWebhook"]>;
        try {
          event = provider.verifyWebhook(raw, typeof header === "string" ? header : undefined);
        } catch (error) {
          if (!(error instanceof WebhookSignatureError)) throw error;
          metrics.webhooks.inc({ provider: provider.name, outcome: "bad_signature" });
          return reply.code(400).send({ error: error.message });
        }
        // Parsed JSON, not yet checked (mapCheckoutEvent does): any value may be here.
        span.setAttribute("payment.event.id", String(event?.id));
        span.setAttribute("payment.event.type", String(event?.type));
        try {
          const outcome = await payments.applyProviderEvent(event);
          metrics.webhooks.inc({ provider: provider.name, outcome });
          span.setAttribute("payment.outcome", outcome);
          // Not a provider's event: refused like a bad signature, nothing was stored.
          if (outcome === "malformed") return reply.code(400).send({ error: "malformed event" });
          return reply.code(200).send({ received: true, outcome });
        } catch (error) {
          throw asTransient(error, "order store");
        }
      },
    );
  });

  if (deps.local) registerCheckout(app, { ...deps, local: deps.local });
  registerReturnPage(app);

  /** 401 without a valid token, 403 for a caller the route does not allow; true when it may go on. */
  const authorized = async (
    route: InternalRoute,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<boolean> => {
    let claims: Awaited<ReturnType<Verifier["verify"]>>;
    try {
      claims = await deps.verifier.verify(request.headers.authorization);
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      await reply.code(401).header("www-authenticate", "Bearer").send({ error: error.message });
      return false;
    }
    const decision = decideInternal(route, claims, deps.access);
    if (decision.allowed) return true;
    logger.warn({ by: decision.caller, route, missing: decision.missing }, "internal API call refused");
    await reply.code(403).send({ error: internalRefusal(decision, deps.access) });
    return false;
  };

  /** The order id or number in the URL, checked for its shape before anything is looked up: 400 if not. */
  const orderParam = async (id: string, reply: FastifyReply): Promise<boolean> => {
    if (readOrderNumberText(id) || readOrderId(id)) return true;
    await reply.code(400).send({ error: "not an order id or number" });
    return false;
  };

  // `:id` is the order id or its number, in any form people type it ("7kq2m9xd" too).
  app.get<{ Params: { id: string } }>("/internal/orders/:id", async (request, reply) => {
    if (!(await authorized("read_order", request, reply))) return reply;
    if (!(await orderParam(request.params.id, reply))) return reply;
    const order = await payments.findOrder(request.params.id);
    if (!order) return reply.code(404).send({ error: "no such order" });
    return view(order);
  });

  app.post<{ Params: { id: string } }>("/internal/orders/:id/refund", async (request, reply) => {
    if (!(await authorized("refund", request, reply))) return reply;
    if (!(await orderParam(request.params.id, reply))) return reply;
    let result: Awaited<ReturnType<Payments["refund"]>>;
    try {
      result = await payments.refund(request.params.id);
    } catch (error) {
      // The order stays refund_due with the reason recorded: a person refunds it at the provider.
      if (error instanceof ProviderRefusal)
        return reply.code(502).send({ error: `the provider refused the refund: ${error.message}` });
      throw asTransient(error, "order store");
    }
    if (result === "not_found") return reply.code(404).send({ error: "no such order" });
    if (result === "not_paid")
      return reply.code(409).send({ error: "only a paid or shipped order can be refunded" });
    return view(result);
  });

  return app;
}

/**
 * What the internal API (and the orders CLI's --json) shows of an order: no outbox, no internals.
 * It holds the shopper's personal data (delivery, recipient): for operators and the shop only.
 */
export function view(order: OrderDoc) {
  return {
    orderId: order._id,
    number: order.number,
    conversationId: order.conversationId,
    state: order.state,
    amount: order.amount,
    currency: order.currency,
    shopId: order.shopId,
    productId: order.productId,
    productName: order.productName,
    designId: order.designId,
    imageId: order.imageId,
    ...(order.recipient ? { recipient: order.recipient } : {}),
    ...(order.delivery ? { delivery: order.delivery } : {}),
    provider: order.provider,
    createdAt: order.createdAt.toISOString(),
    sessions: order.attempt,
    ...(order.session
      ? { link: order.session.url, linkExpiresAt: order.session.expiresAt.toISOString() }
      : {}),
    ...(order.paidAt ? { paidAt: order.paidAt.toISOString() } : {}),
    ...(order.failureReason ? { failureReason: order.failureReason } : {}),
    ...(order.cancelReason ? { cancelReason: order.cancelReason } : {}),
    ...(order.refundReason ? { refundReason: order.refundReason } : {}),
    ...(order.state === "refund_due" && order.refundRefused ? { refundRefused: order.refundRefused } : {}),
    ...(order.refundedAt ? { refundedAt: order.refundedAt.toISOString() } : {}),
    ...(order.shippedAt ? { shippedAt: order.shippedAt.toISOString() } : {}),
    ...(order.trackingUrl ? { trackingUrl: order.trackingUrl } : {}),
    history: order.history.map((h) => ({ state: h.state, at: h.at.toISOString(), by: h.by })),
  };
}

/**
 * Delivers a local provider event the way a real provider would: signed, to the webhook route,
 * through the whole HTTP pipeline (raw body, signature check, event index). Returns the status.
 */
export async function deliverLocalEvent(
  app: FastifyInstance,
  local: LocalProvider,
  type: LocalEventType,
  session: { id: string; orderNumber: string },
): Promise<number> {
  const { body, signature } = local.signedEvent(type, session);
  const response = await app.inject({
    method: "POST",
    url: "/payments/webhooks/local",
    headers: { "content-type": "application/json", [LOCAL_SIGNATURE_HEADER]: signature },
    payload: body,
  });
  return response.statusCode;
}

function registerCheckout(app: FastifyInstance, deps: PaymentAppDeps & { local: LocalProvider }): void {
  const { payments, store } = deps;

  const find = async (sessionId: string) => {
    const orderId = await store.sessionOrder(sessionId);
    return orderId ? await store.get(orderId) : null;
  };
  // Only an id of the local provider's shape is looked up: anything else is no checkout of ours.
  const sessionShaped = {
    preHandler: async (request: FastifyRequest<{ Params: { session: string } }>, reply: FastifyReply) => {
      if (readLocalSessionId(request.params.session)) return;
      return reply
        .code(400)
        .type("text/html; charset=utf-8")
        .send(page("Not found", "<p>No such checkout.</p>"));
    },
  };

  /** The page for a session that can no longer be paid, or was just paid. */
  const closed = (order: OrderDoc, sessionId: string) => {
    if (order.paidSessionId && order.refundReason === "cancelled_before_payment")
      return page(
        "Cancelled",
        `<p>This order (<b>${esc(order.number)}</b>) was cancelled, so your payment is refunded.</p>`,
      );
    if (PAID.includes(order.state))
      return order.paidSessionId === sessionId
        ? page(
            "Paid",
            `<p>Payment received, thank you. Your order number is <b>${esc(order.number)}</b>.</p>
           <p>You can go back to WhatsApp now.</p>`,
          )
        : page("Already paid", "<p>This order is already paid. Nothing more was charged.</p>");
    return page(
      "Checkout closed",
      "<p>This checkout link has expired or was cancelled. Nothing was charged.</p><p>Choose your design again in WhatsApp to get a new link.</p>",
    );
  };

  app.get<{ Params: { session: string } }>("/checkout/:session", sessionShaped, async (request, reply) => {
    const sessionId = request.params.session;
    const order = await find(sessionId);
    reply.type("text/html; charset=utf-8");
    if (!order) return reply.code(404).send(page("Not found", "<p>No such checkout.</p>"));
    if (!payments.payable(order, sessionId)) return closed(order, sessionId);
    const action = (what: string) => `/checkout/${encodeURIComponent(sessionId)}/${what}`;
    return page(
      "Checkout",
      `<h1>${esc(order.productName)}</h1>
      <img src="${action("image")}" alt="Your design" width="320">
      <p>Order <code>${esc(order.number)}</code></p>
      <p class="total">Total: <b>${esc(contracts.formatPrice(order.amount, order.currency, "en"))}</b></p>
      ${order.delivery ? `<p class="delivery">Delivering to<br>${deliveryLines(order.delivery).map(esc).join("<br>")}</p>` : ""}
      <p>Link valid until ${esc(order.session?.expiresAt.toISOString() ?? "")}</p>
      <form method="post" action="${action("pay")}"><button type="submit" id="pay">Pay</button></form>
      <form method="post" action="${action("cancel")}"><button type="submit" id="cancel">Cancel</button></form>`,
    );
  });

  app.get<{ Params: { session: string } }>(
    "/checkout/:session/image",
    sessionShaped,
    async (request, reply) => {
      const order = await find(request.params.session);
      const image = order?.imageId ? await deps.images.get(order.imageId) : undefined;
      if (!image) return reply.code(404).send({ error: "no image" });
      return reply.type(image.contentType).header("cache-control", "private, max-age=3600").send(image.bytes);
    },
  );

  for (const [action, type] of [
    ["pay", "checkout.session.completed"],
    ["cancel", "checkout.session.expired"],
  ] as const) {
    app.post<{ Params: { session: string } }>(
      `/checkout/:session/${action}`,
      sessionShaped,
      async (request, reply) => {
        const sessionId = request.params.session;
        const order = await find(sessionId);
        reply.type("text/html; charset=utf-8");
        if (!order) return reply.code(404).send(page("Not found", "<p>No such checkout.</p>"));
        if (!payments.payable(order, sessionId)) {
          // Past its expiry but not swept yet: end it now, the same way the sweeper would.
          if (order.state === "link_sent" && order.session?.id === sessionId)
            await deliverLocalEvent(app, deps.local, "checkout.session.expired", {
              id: sessionId,
              orderNumber: order.number,
            });
          return reply.code(409).send(closed((await store.get(order._id)) ?? order, sessionId));
        }
        const status = await deliverLocalEvent(app, deps.local, type, {
          id: sessionId,
          orderNumber: order.number,
        });
        if (status !== 200)
          return reply
            .code(503)
            .send(page("Try again", "<p>Something went wrong. Nothing was charged; please try again.</p>"));
        const after = (await store.get(order._id)) ?? order;
        if (action === "cancel")
          return page(
            "Cancelled",
            "<p>Cancelled. Nothing was charged.</p><p>You can go back to WhatsApp.</p>",
          );
        return closed(after, sessionId);
      },
    );
  }
}

/** Where Stripe sends the shopper back to (success_url / cancel_url). */
function registerReturnPage(app: FastifyInstance): void {
  app.get<{ Querystring: { result?: string } }>("/checkout/return", async (request, reply) => {
    reply.type("text/html; charset=utf-8");
    return request.query.result === "paid"
      ? page("Thank you", "<p>Thank you! Your confirmation arrives in WhatsApp.</p>")
      : page("Cancelled", "<p>Nothing was charged. You can go back to WhatsApp.</p>");
  });
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}
img{max-width:100%;border-radius:8px}button{font-size:1.1rem;padding:.6rem 1.4rem;margin:.3rem 0;width:100%}
#pay{background:#1a7f37;color:#fff;border:0;border-radius:6px}</style></head>
<body>${body}</body></html>`;
}

function esc(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}

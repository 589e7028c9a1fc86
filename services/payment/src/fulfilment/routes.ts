import type { Logger } from "@taituri/logging";
import { asTransient } from "@taituri/mongo";
import { SpanKind, withSpan } from "@taituri/telemetry";
import type { FastifyInstance } from "fastify";
import type { OrderDoc } from "../adapters/store.ts";
import { readOrderNumber } from "../domain/order-number.ts";
import { InvalidTrackingUrl } from "../payments.ts";
import type { DesignUrls } from "./design-url.ts";
import type { Endpoints } from "./endpoints.ts";
import type { FulfilmentMetrics } from "./metrics.ts";
import { SIGNATURE_HEADER, SIGNATURE_TOLERANCE_S, verifyBody } from "./signature.ts";

export interface FulfilmentRoutesDeps {
  /** The order with this (canonical) number. */
  orderByNumber(number: string): Promise<OrderDoc | null>;
  images: { get(id: string): Promise<{ bytes: Buffer; contentType: string } | undefined> };
  markShipped(number: string, trackingUrl?: string): Promise<OrderDoc | "not_found" | "not_shippable">;
  designs: DesignUrls;
  endpoints: Endpoints;
  metrics: FulfilmentMetrics;
  logger: Logger;
  now?: () => Date;
}

/** The one answer to an unknown order or a bad signature: which of the two it was stays unsaid. */
const INVALID_SIGNATURE = { error: "invalid signature" };

/**
 * The shops' side of the payment service's HTTP surface (public, like the provider webhooks):
 * - GET /orders/<number>/design?expires=…&signature=…: the design of an order, through the signed,
 *   expiring link a delivery carried (design-url.ts). A link that is not ours or has expired gets a
 *   403 with nothing more; a good link to an order or image that is not there, 404.
 * - POST /shop/orders/<number>/shipped: the shop says it sent the gift, optionally with
 *   {"trackingUrl": "https://…"}, signed with its secret over the raw body (Taituri-Signature, as our
 *   posts to it). Unknown order and bad signature are the same 401, so the call tells nobody
 *   without the secret which order numbers exist.
 */
export function registerFulfilmentRoutes(app: FastifyInstance, deps: FulfilmentRoutesDeps): void {
  const now = deps.now ?? (() => new Date());
  const { metrics } = deps;

  app.get<{ Params: { number: string }; Querystring: { expires?: string; signature?: string } }>(
    "/orders/:number/design",
    async (request, reply) => {
      const at = now();
      const { expires, signature } = request.query;
      if (!deps.designs.verify(request.params.number, expires, signature, at))
        return reply.code(403).send({ error: "forbidden" });
      // A link we signed names a canonical number.
      const number = readOrderNumber(request.params.number);
      let image: { bytes: Buffer; contentType: string } | undefined;
      try {
        const order = number ? await deps.orderByNumber(number) : null;
        image = order?.imageId ? await deps.images.get(order.imageId) : undefined;
      } catch (error) {
        throw asTransient(error, "order store");
      }
      if (!image) return reply.code(404).send({ error: "not found" });
      // Cached by the shop's browser for an hour at most, never past the link's expiry.
      const maxAge = Math.max(0, Math.min(3600, Number(expires) - Math.floor(at.getTime() / 1000)));
      return reply
        .type(image.contentType)
        .header("cache-control", `private, max-age=${maxAge}`)
        .header("x-content-type-options", "nosniff")
        .send(image.bytes);
    },
  );

  app.post<{ Params: { number: string } }>("/shop/orders/:number/shipped", async (request, reply) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const header = request.headers[SIGNATURE_HEADER.toLowerCase()];
    return withSpan(
      "@taituri/payment",
      "shop marks order shipped",
      { kind: SpanKind.SERVER },
      async (span) => {
        const number = readOrderNumber(request.params.number);
        let order: OrderDoc | null;
        try {
          order = number ? await deps.orderByNumber(number) : null;
        } catch (error) {
          throw asTransient(error, "order store");
        }
        const secrets = order ? (deps.endpoints.forShop(order.shopId)?.secrets ?? []) : [];
        if (
          !order ||
          !verifyBody(
            raw,
            typeof header === "string" ? header : undefined,
            secrets,
            now(),
            SIGNATURE_TOLERANCE_S,
          )
        ) {
          metrics.shipped.inc({ outcome: "bad_signature" });
          return reply.code(401).send(INVALID_SIGNATURE);
        }
        span.setAttribute("order.number", order.number);

        const body = readShippedBody(raw);
        if (typeof body === "string") {
          metrics.shipped.inc({ outcome: "bad_request" });
          return reply.code(400).send({ error: body });
        }
        const already = order.state === "shipped";
        let result: Awaited<ReturnType<FulfilmentRoutesDeps["markShipped"]>>;
        try {
          result = await deps.markShipped(order.number, body.trackingUrl);
        } catch (error) {
          if (error instanceof InvalidTrackingUrl) {
            metrics.shipped.inc({ outcome: "bad_request" });
            return reply.code(400).send({ error: error.message });
          }
          throw asTransient(error, "order store");
        }
        if (result === "not_found") {
          metrics.shipped.inc({ outcome: "bad_signature" });
          return reply.code(401).send(INVALID_SIGNATURE);
        }
        if (result === "not_shippable") {
          metrics.shipped.inc({ outcome: "not_paid" });
          return reply
            .code(409)
            .send({ error: "only a paid order can be marked shipped", state: order.state });
        }
        metrics.shipped.inc({ outcome: already ? "already_shipped" : "shipped" });
        span.setAttribute("fulfilment.shipped.outcome", already ? "already_shipped" : "shipped");
        deps.logger.info({ orderNumber: result.number, already }, "shop marked the order shipped");
        return reply.code(200).send({ number: result.number, state: result.state });
      },
    );
  });
}

/** The shipped call's body: empty, or a JSON object with an optional string trackingUrl; else why not. */
export function readShippedBody(raw: Buffer): { trackingUrl?: string } | string {
  const text = raw.toString("utf8").trim();
  if (text === "") return {};
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return "the body must be JSON";
  }
  if (typeof data !== "object" || data === null || Array.isArray(data))
    return "the body must be a JSON object";
  const { trackingUrl } = data as { trackingUrl?: unknown };
  if (trackingUrl === undefined || trackingUrl === null) return {};
  if (typeof trackingUrl !== "string") return "trackingUrl must be a string";
  return { trackingUrl };
}

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogger } from "@taituri/logging";
import Fastify from "fastify";
import { Registry } from "prom-client";
import type { OrderDoc } from "../adapters/store.ts";
import { InvalidTrackingUrl } from "../payments.ts";
import { createDesignUrls } from "./design-url.ts";
import { createFulfilmentMetrics } from "./metrics.ts";
import { readShippedBody, registerFulfilmentRoutes } from "./routes.ts";
import { signBody } from "./signature.ts";

const SHOP_SECRET = "shop-secret-0123456789abcdef0123456789";
const DESIGN_SECRET = "design-secret-0123456789abcdef01234567";
const at = new Date("2026-03-01T12:00:00Z");
const image = Buffer.from("PNG…");

function setup() {
  const orders = new Map<string, Partial<OrderDoc>>([
    ["7KQ2-M9XD", { number: "7KQ2-M9XD", shopId: "demo-shop", state: "paid", imageId: "img-1" }],
    ["AAAA-BBBB", { number: "AAAA-BBBB", shopId: "demo-shop", state: "link_sent", imageId: "img-2" }],
    ["CCCC-DDDD", { number: "CCCC-DDDD", shopId: "other-shop", state: "paid", imageId: "missing" }],
  ]);
  const shipped: { number: string; trackingUrl?: string }[] = [];
  const designs = createDesignUrls({ secret: DESIGN_SECRET, ttlSeconds: 600, publicUrl: () => "http://pay" });
  const app = Fastify();
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  registerFulfilmentRoutes(app, {
    orderByNumber: async (number) => (orders.get(number) as OrderDoc) ?? null,
    images: { get: async (id) => (id === "img-1" ? { bytes: image, contentType: "image/png" } : undefined) },
    markShipped: async (number, trackingUrl) => {
      if (trackingUrl && !trackingUrl.startsWith("http"))
        throw new InvalidTrackingUrl("tracking URL must be http or https");
      const order = orders.get(number);
      if (!order) return "not_found";
      if (order.state === "shipped") return order as OrderDoc;
      if (order.state !== "paid") return "not_shippable";
      shipped.push({ number, ...(trackingUrl ? { trackingUrl } : {}) });
      order.state = "shipped";
      return order as OrderDoc;
    },
    designs,
    endpoints: {
      forShop: (shop) =>
        shop === "demo-shop"
          ? { url: "https://s.example", secrets: [SHOP_SECRET], from: "default" }
          : undefined,
    },
    metrics: createFulfilmentMetrics(new Registry(), async () => ({ count: 0, oldest: null })),
    logger: createLogger({ service: "test", level: "silent" }),
    now: () => at,
  });
  const ship = (number: string, body: string, signature = signBody(body, [SHOP_SECRET], at)) =>
    app.inject({
      method: "POST",
      url: `/shop/orders/${number}/shipped`,
      headers: { "content-type": "application/json", "taituri-signature": signature },
      payload: body,
    });
  return { app, designs, shipped, ship };
}

describe("the design link", () => {
  test("serves the order's image while the link is good; 403 without detail otherwise; 404 for a missing image", async () => {
    const { app, designs } = setup();
    const { url } = designs.make("7KQ2-M9XD", at);
    const path = url.slice("http://pay".length);
    const ok = await app.inject({ method: "GET", url: path });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.headers["content-type"], "image/png");
    assert.deepEqual(ok.rawPayload, image);
    for (const bad of [
      path.replace(/signature=[0-9a-f]/, "signature=0"),
      path.replace("7KQ2-M9XD", "7KQ2-M9XE"),
      path.replace(/expires=\d+/, "expires=1900000000"),
      "/orders/7KQ2-M9XD/design",
      // Signed, but for a moment already past.
      designs.make("7KQ2-M9XD", new Date(at.getTime() - 601_000)).url.slice("http://pay".length),
    ]) {
      const refused = await app.inject({ method: "GET", url: bad });
      assert.equal(refused.statusCode, 403, bad);
      assert.deepEqual(refused.json(), { error: "forbidden" });
    }
    const missing = designs.make("CCCC-DDDD", at).url.slice("http://pay".length);
    assert.equal((await app.inject({ method: "GET", url: missing })).statusCode, 404);
    const unknown = designs.make("ZZZZ-ZZZZ", at).url.slice("http://pay".length);
    assert.equal((await app.inject({ method: "GET", url: unknown })).statusCode, 404);
  });
});

describe("the shop's shipped call", () => {
  test("signed: a paid order is shipped (the number in any form), again is 200 too", async () => {
    const { ship, shipped } = setup();
    const body = JSON.stringify({ trackingUrl: "https://track.example/1" });
    const first = await ship("7kq2m9xd", body);
    assert.equal(first.statusCode, 200);
    assert.deepEqual(first.json(), { number: "7KQ2-M9XD", state: "shipped" });
    assert.deepEqual(shipped, [{ number: "7KQ2-M9XD", trackingUrl: "https://track.example/1" }]);
    const again = await ship("7KQ2-M9XD", body);
    assert.equal(again.statusCode, 200);
    assert.deepEqual(again.json(), { number: "7KQ2-M9XD", state: "shipped" });
    assert.equal(shipped.length, 1);
  });

  test("an empty body is a shipped call without tracking URL", async () => {
    const { ship, shipped } = setup();
    assert.equal((await ship("7KQ2-M9XD", "")).statusCode, 200);
    assert.deepEqual(shipped, [{ number: "7KQ2-M9XD" }]);
  });

  test("unknown order, bad or stale signature, another shop's order: the same 401", async () => {
    const { ship, shipped } = setup();
    const body = "{}";
    const stale = signBody(body, [SHOP_SECRET], new Date(at.getTime() - 301_000));
    for (const response of [
      await ship("ZZZZ-ZZZZ", body),
      await ship("not-a-number", body),
      await ship("7KQ2-M9XD", body, signBody(body, ["another-secret-0123456789abcdef012345"], at)),
      await ship("7KQ2-M9XD", body, stale),
      await ship("7KQ2-M9XD", body, ""),
      await ship("7KQ2-M9XD", '{"trackingUrl":"https://x"}', signBody(body, [SHOP_SECRET], at)),
      // A shop without an endpoint has no secret: nothing it sends is accepted.
      await ship("CCCC-DDDD", body, signBody(body, [SHOP_SECRET], at)),
    ]) {
      assert.equal(response.statusCode, 401);
      assert.deepEqual(response.json(), { error: "invalid signature" });
    }
    assert.equal(shipped.length, 0);
  });

  test("not paid: 409; a bad tracking URL or body: 400", async () => {
    const { ship } = setup();
    const notPaid = await ship("AAAA-BBBB", "{}");
    assert.equal(notPaid.statusCode, 409);
    assert.equal(notPaid.json().state, "link_sent");
    const badUrl = await ship("7KQ2-M9XD", JSON.stringify({ trackingUrl: "javascript:alert(1)" }));
    assert.equal(badUrl.statusCode, 400);
    assert.match(badUrl.json().error, /http or https/);
    assert.equal((await ship("7KQ2-M9XD", "[1]")).statusCode, 400);
    assert.equal((await ship("7KQ2-M9XD", "{oops")).statusCode, 400);
    assert.equal((await ship("7KQ2-M9XD", '{"trackingUrl":5}')).statusCode, 400);
  });

  test("the body reader", () => {
    assert.deepEqual(readShippedBody(Buffer.from("  ")), {});
    assert.deepEqual(readShippedBody(Buffer.from('{"trackingUrl":null}')), {});
    assert.deepEqual(readShippedBody(Buffer.from('{"trackingUrl":"https://t"}')), {
      trackingUrl: "https://t",
    });
    assert.equal(typeof readShippedBody(Buffer.from("null")), "string");
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogger } from "@taituri/logging";
import type { ImageStore } from "@taituri/mongo";
import { AuthError, type Verifier } from "@taituri/oidc";
import { Registry } from "prom-client";
import type { PaymentProvider } from "./adapters/provider.ts";
import { newOrderDoc, type OrderDoc, type PaymentStore } from "./adapters/store.ts";
import { buildPaymentApp } from "./app.ts";
import { createMetrics } from "./metrics.ts";
import type { Payments } from "./payments.ts";

/**
 * The internal API's authorization per route, with a verifier that maps a token to its claims and
 * an order service that records what reached it: 401 without a valid token, 403 for a caller the
 * route does not allow (a refund needs the admin scope), 400 for an id of no order's shape; none
 * of them reaches the orders. On the real servers: tests/integration/payment.test.ts.
 */
const tokens: Record<string, Record<string, unknown>> = {
  reader: { sub: "payment-admin" },
  admin: { sub: "payment-admin", scope: "payment.admin" },
  "client-admin": { sub: "8f14e45f-service-account", azp: "payment-admin", scope: "payment.admin" },
  stranger: { sub: "generation", scope: "payment.admin" },
  "k8s-admin": { sub: "system:serviceaccount:ops:payment-admin" },
};
const verifier: Verifier = {
  async verify(header) {
    const claims = tokens[header?.replace("Bearer ", "") ?? ""];
    if (!claims) throw new AuthError("missing bearer token");
    return claims;
  },
};

function setup() {
  const order: OrderDoc = {
    ...newOrderDoc(
      {
        _id: "PNX:15550001234/o1",
        conversationId: "PNX:15550001234",
        shopId: "demo-shop",
        productId: "mug",
        productName: "Mug",
        designId: "d1",
        imageId: "i1",
        amount: 1990,
        currency: "EUR",
        provider: "stripe",
      },
      "7KQ2-M9XD",
      new Date("2026-05-01T10:00:00Z"),
    ),
    state: "paid",
  };
  const reached: string[] = [];
  const payments = {
    findOrder: async (id: string) => {
      reached.push(`find ${id}`);
      return order;
    },
    refund: async (id: string) => {
      reached.push(`refund ${id}`);
      return { ...order, state: "refunded" };
    },
  } as unknown as Payments;
  const app = buildPaymentApp({
    payments,
    provider: { name: "stripe" } as PaymentProvider,
    store: {} as PaymentStore,
    images: {} as ImageStore,
    verifier,
    access: {
      callers: ["payment-admin"],
      adminScope: "payment.admin",
      adminSubjects: ["system:serviceaccount:ops:payment-admin"],
    },
    metrics: createMetrics(new Registry(), async () => ({})),
    logger: createLogger({ service: "test", level: "silent" }),
  });
  const call = async (method: "GET" | "POST", url: string, token?: string) =>
    (
      await app.inject({
        method,
        url,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      })
    ).statusCode;
  return { reached, call };
}

const lookup = "/internal/orders/7KQ2-M9XD";
const refund = "/internal/orders/7KQ2-M9XD/refund";

describe("internal API authorization", () => {
  test("a caller outside PAYMENT_INTERNAL_CALLERS gets 403 on every route, whatever its scopes", async () => {
    const t = setup();
    assert.equal(await t.call("GET", lookup, "stranger"), 403);
    assert.equal(await t.call("POST", refund, "stranger"), 403);
    assert.equal(await t.call("GET", lookup), 401);
    assert.equal(await t.call("POST", refund, "forged"), 401);
    assert.deepEqual(t.reached, []);
  });

  test("a listed caller reads orders; its refund without the admin scope is 403", async () => {
    const t = setup();
    assert.equal(await t.call("GET", lookup, "reader"), 200);
    assert.equal(await t.call("POST", refund, "reader"), 403);
    assert.deepEqual(t.reached, ["find 7KQ2-M9XD"]);
  });

  test("the admin scope, the client named in azp, or an admin subject refunds", async () => {
    const t = setup();
    for (const token of ["admin", "client-admin", "k8s-admin"])
      assert.equal(await t.call("POST", refund, token), 200);
    assert.equal(t.reached.length, 3);
  });

  test("an id of no order's shape is 400 and looked up nowhere", async () => {
    const t = setup();
    assert.equal(await t.call("GET", `/internal/orders/${encodeURIComponent("PNX:1 /o1")}`, "admin"), 400);
    assert.equal(
      await t.call("POST", `/internal/orders/${encodeURIComponent("7KQ2-M9XD\u0000")}/refund`, "admin"),
      400,
    );
    // Longer than any id: refused by the router before the route runs.
    assert.equal(await t.call("GET", `/internal/orders/${"x".repeat(300)}`, "admin"), 414);
    assert.deepEqual(t.reached, []);
  });
});

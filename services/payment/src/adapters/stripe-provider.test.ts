import assert from "node:assert/strict";
import { test } from "node:test";
import { ProviderRefusal } from "./provider.ts";
import { StripeProvider } from "./stripe-provider.ts";

/**
 * Stripe knows an order by its number only: a request carrying anything else in its place is
 * refused before it leaves (the API URL here answers nothing, so a request sent would fail
 * otherwise). What does go out: tests/integration/payment-privacy.test.ts, through stripe-mock.
 */
const provider = new StripeProvider({
  secretKey: "sk_test_123",
  webhookSecret: "whsec_x",
  publicUrl: "http://127.0.0.1:3003",
  toleranceSeconds: 300,
  timeoutMs: 1000,
  apiUrl: "http://127.0.0.1:1",
});
const session = {
  attempt: 1,
  amount: 1990,
  currency: "EUR",
  productName: "Mug",
  expiresAt: new Date(Date.now() + 3600_000),
};
const refused = (message: RegExp) => (error: unknown) =>
  error instanceof ProviderRefusal && message.test(error.message);

test("an order id or a phone number in the order number's place is refused, and not repeated", async () => {
  for (const orderNumber of ["PNX:15550001234/o1", "15550001234", "7kq2m9xd"]) {
    await assert.rejects(
      provider.createSession({ ...session, orderNumber, idempotencyKey: orderNumber }),
      (error: unknown) =>
        refused(/^not an order number/)(error) && !(error as Error).message.includes(orderNumber),
    );
    await assert.rejects(
      provider.refund({
        orderNumber,
        amount: 1990,
        paymentRef: "pi_1",
        idempotencyKey: `refund:${orderNumber}`,
      }),
      refused(/^not an order number/),
    );
  }
});

test("an idempotency key not made of the order number is refused", async () => {
  await assert.rejects(
    provider.createSession({ ...session, orderNumber: "7KQ2-M9XD", idempotencyKey: "PNX:15550001234/o1" }),
    refused(/idempotency key/),
  );
  await assert.rejects(
    provider.refund({ orderNumber: "7KQ2-M9XD", amount: 1990, paymentRef: "pi_1", idempotencyKey: "x" }),
    refused(/idempotency key/),
  );
});

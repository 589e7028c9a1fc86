import { fileURLToPath } from "node:url";
import { baseSchema, loadConfig, port, positiveInt, z } from "@taituri/config";

const conversationData = (file: string) =>
  fileURLToPath(new URL(`../../conversation/data/${file}`, import.meta.url));

export const schema = baseSchema
  .extend({
    // Port of the checkout page, the provider webhooks, the internal API and /healthz, /readyz, /metrics.
    PAYMENT_PORT: port(3003),
    PAYMENT_HOST: z.string().default("127.0.0.1"),
    // Base URL shoppers' browsers (and Stripe's redirects) reach this service at: checkout links
    // are built from it. Unset: the address the server listens on (http://127.0.0.1:3003 by default).
    PAYMENT_PUBLIC_URL: z
      .string()
      .url()
      .transform((u) => u.replace(/\/+$/, ""))
      .optional(),
    // Who takes the money: "local" (a checkout page served here, for development and demos) or
    // "stripe" (Stripe Checkout).
    PAYMENT_PROVIDER: z.enum(["local", "stripe"]).default("local"),
    // The shops' catalog (the same YAML the conversation offers from); prices are checked against it.
    PAYMENT_CATALOG_FILE: z.string().default(conversationData("catalog.yaml")),
    // How long a checkout link can be paid. Stripe accepts 30 minutes to 24 hours.
    PAYMENT_SESSION_TTL_MS: positiveInt(30 * 60_000),
    // How often the sweeper looks for local sessions past their expiry and for events a crash left
    // unpublished.
    PAYMENT_SWEEP_MS: positiveInt(1000),
    // An outbox entry older than this is published by the sweeper (the writer has probably died).
    PAYMENT_OUTBOX_GRACE_MS: positiveInt(5000),
    // Signs the local provider's webhook events (Stripe's scheme). Any value works locally; set
    // your own wherever the checkout page is reachable by others.
    PAYMENT_LOCAL_WEBHOOK_SECRET: z.string().min(16).default("local-checkout-webhook-secret"),
    // A webhook whose signed timestamp is further than this from now is refused (replays).
    PAYMENT_WEBHOOK_TOLERANCE_S: positiveInt(300),
    // A provider call slower than this fails and is retried with the request.
    PAYMENT_PROVIDER_TIMEOUT_MS: positiveInt(10_000),
    // Stripe secret API key (sk_…); required when PAYMENT_PROVIDER=stripe.
    STRIPE_SECRET_KEY: z.string().optional(),
    // Stripe webhook endpoint secret (whsec_…) for POST /payments/webhooks/stripe; required with stripe.
    STRIPE_WEBHOOK_SECRET: z.string().optional(),
    // Another Stripe API base URL, e.g. stripe-mock's http://127.0.0.1:12111 in tests.
    STRIPE_API_URL: z.string().url().optional(),
    // OIDC issuer whose tokens the internal endpoints (order lookup, refund) require, as the limiter's.
    OIDC_ISSUER_URL: z.string().url().default("http://127.0.0.1:3010"),
    // The `aud` those tokens must name.
    PAYMENT_AUDIENCE: z.string().min(1).default("payment"),
    // Partitions of payment requests handled at once; order within each is kept.
    CONSUMER_CONCURRENCY: positiveInt(3),
  })
  .superRefine((c, ctx) => {
    if (c.PAYMENT_PROVIDER !== "stripe") return;
    for (const key of ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"] as const) {
      if (!c[key])
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `${key} is required with PAYMENT_PROVIDER=stripe`,
        });
    }
    if (c.PAYMENT_SESSION_TTL_MS < 30 * 60_000 || c.PAYMENT_SESSION_TTL_MS > 24 * 3600_000)
      ctx.addIssue({
        code: "custom",
        path: ["PAYMENT_SESSION_TTL_MS"],
        message: "Stripe sessions last 30 minutes to 24 hours",
      });
  });

export type PaymentConfig = z.infer<typeof schema>;

export const loadPaymentConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

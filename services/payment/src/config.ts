import { fileURLToPath } from "node:url";
import {
  baseSchema,
  checkHttpListener,
  checkOpsPort,
  csv,
  httpListenerSettings,
  loadConfig,
  oidcVerifierFields,
  port,
  positiveInt,
  refuseOutsideLocal,
  z,
} from "@taituri/config";
import { endpointUrlProblem, MIN_SECRET_LENGTH } from "./fulfilment/endpoints.ts";

const conversationData = (file: string) =>
  fileURLToPath(new URL(`../../conversation/data/${file}`, import.meta.url));

const LOCAL_DESIGN_LINK_SECRET = "taituri-local-design-link-secret-not-for-production";

export const schema = baseSchema
  .extend({
    // Port of the checkout page, the provider webhooks, the internal API and the shops' calls.
    PAYMENT_PORT: port(3003),
    // Port of /healthz, /readyz and /metrics, for probes and scrapers only; differs from PAYMENT_PORT.
    PAYMENT_OPS_PORT: port(3103),
    // Interface both listen on; 0.0.0.0 in a container, loopback on a laptop.
    PAYMENT_HOST: z.string().default("127.0.0.1"),
    // Timeouts of the public listener (checkout and the provider's webhook) and the ops one (HTTP_REQUEST_TIMEOUT_MS,
    // HTTP_HEADERS_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS; packages/config/src/http.ts).
    ...httpListenerSettings,
    // Base URL shoppers' browsers (and Stripe's redirects) reach this service at: checkout links
    // are built from it. Unset: the address the server listens on (http://127.0.0.1:3003 by
    // default), which only works on this machine: refused outside local.
    PAYMENT_PUBLIC_URL: refuseOutsideLocal(
      z
        .string()
        .url()
        .transform((u) => u.replace(/\/+$/, ""))
        .optional(),
      {
        unset: true,
        is: "unset: checkout links would name the address this service listens on",
        instead: "set the https URL shoppers' browsers reach the checkout at",
      },
    ),
    // Who takes the money: "local" (a checkout page served here, for development and demos; refused
    // outside local, as anyone could "pay" on it) or "stripe" (Stripe Checkout).
    PAYMENT_PROVIDER: refuseOutsideLocal(z.enum(["local", "stripe"]).default("local"), {
      values: ["local"],
      is: "the local provider, whose checkout page charges nothing",
      instead: "set PAYMENT_PROVIDER=stripe",
    }),
    // The shops' catalog (the same YAML the conversation offers from); prices are checked against it.
    PAYMENT_CATALOG_FILE: z.string().default(conversationData("catalog.yaml")),
    // How long a checkout link can be paid. Stripe accepts 30 minutes to 24 hours.
    PAYMENT_SESSION_TTL_MS: positiveInt(30 * 60_000),
    // How often the sweeper looks for local sessions past their expiry and for events a crash left
    // unpublished.
    PAYMENT_SWEEP_MS: positiveInt(1000),
    // An outbox entry older than this is published by the sweeper (the writer has probably died).
    PAYMENT_OUTBOX_GRACE_MS: positiveInt(5000),
    // An order that ended (expired, failed, cancelled: deleted; shipped, refunded: kept as a tombstone
    // without personal data, as an erase does) this long after its last change is forgotten, and so is
    // a delivery this long after the shop accepted it. At least 8: longer than the topics keep their
    // records (7 days), so no payment request or paid order of a forgotten one can be delivered again
    // and make it or its delivery anew, and than a session can be paid (a day) and a provider retries
    // a webhook (Stripe: 3 days).
    PAYMENT_RETENTION_DAYS: z.coerce.number().int().min(8).default(90),
    // How often orders and deliveries past their retention are looked for (by the sweeper's loop).
    PAYMENT_RETENTION_SWEEP_MS: positiveInt(3600 * 1000),
    // Signs the local provider's webhook events (Stripe's scheme). The default is public: outside
    // local, where the local provider runs at all, a secret of 32+ bytes is required.
    PAYMENT_LOCAL_WEBHOOK_SECRET: refuseOutsideLocal(
      z.string().min(16).default("local-checkout-webhook-secret"),
      {
        secret: ["local-checkout-webhook-secret"],
        when: { PAYMENT_PROVIDER: "local" },
      },
    ),
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
    OIDC_ISSUER_URL: refuseOutsideLocal(z.string().url().default("http://127.0.0.1:3010"), {
      loopbackIssuer: true,
    }),
    ...oidcVerifierFields,
    // The `aud` those tokens must name.
    PAYMENT_AUDIENCE: z.string().min(1).default("payment"),
    // Comma-separated callers of the internal API (a token's client_id, else azp, else sub; in
    // Kubernetes system:serviceaccount:<namespace>:<name>); anyone else gets 403.
    PAYMENT_INTERNAL_CALLERS: csv().default(["payment-admin"]),
    // A refund gives money back: a listed caller needs this scope in its token's `scope` claim...
    PAYMENT_ADMIN_SCOPE: z.string().min(1).default("payment.admin"),
    // ...or to be one of these comma-separated callers, for issuers that put no scope in tokens.
    PAYMENT_ADMIN_SUBJECTS: csv().default([]),
    // Partitions of payment requests handled at once; order within each is kept.
    CONSUMER_CONCURRENCY: positiveInt(3),
    // Where paid orders of shops whose catalog entry has no fulfilment.url are posted (docs/orders.md).
    // Unset: those shops' orders wait for `npm run orders`.
    ORDERS_WEBHOOK_URL: z.string().url().optional(),
    // Signs the posts to ORDERS_WEBHOOK_URL and verifies those shops' "shipped" calls; required with it.
    ORDERS_WEBHOOK_SECRET: z.string().min(MIN_SECRET_LENGTH).optional(),
    // JSON file { "<shop id>": "<secret>" } (or a list of secrets, while rotating) for the shops
    // whose catalog entry has a fulfilment.url: a mounted Secret, as secrets never go in the catalog.
    ORDERS_WEBHOOK_SECRETS_FILE: z.string().optional(),
    // A post to a shop not answered within this counts as a failed attempt (and is retried).
    ORDERS_WEBHOOK_TIMEOUT_MS: positiveInt(10_000),
    // First retry of a failed post within this (full jitter); each failure doubles it up to the max.
    ORDERS_RETRY_BASE_MS: positiveInt(10_000),
    // Longest wait between two attempts; a paid order is retried at this pace for as long as it takes.
    ORDERS_RETRY_MAX_MS: positiveInt(3_600_000),
    // How often the deliverer looks for due retries (a new order is posted at once, not at the next look).
    ORDERS_POLL_MS: positiveInt(1000),
    // Signs the design links sent to shops. The default is public: outside local a secret of 32+
    // bytes is required.
    ORDERS_IMAGE_URL_SECRET: refuseOutsideLocal(
      z.string().min(MIN_SECRET_LENGTH).default(LOCAL_DESIGN_LINK_SECRET),
      { secret: [LOCAL_DESIGN_LINK_SECRET] },
    ),
    // How long a design link works; a new one goes with every attempt.
    ORDERS_IMAGE_URL_TTL_S: positiveInt(7 * 86_400),
  })
  .superRefine((c, ctx) => {
    checkHttpListener(c, ctx);
    checkOpsPort(c, ctx, { publicPort: "PAYMENT_PORT", opsPort: "PAYMENT_OPS_PORT" });
    const local = c.DEPLOYMENT_ENVIRONMENT === "local";
    const issue = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if (c.ORDERS_WEBHOOK_URL) {
      const problem = endpointUrlProblem(c.ORDERS_WEBHOOK_URL, local);
      if (problem) issue("ORDERS_WEBHOOK_URL", `ORDERS_WEBHOOK_URL ${problem}`);
      if (!c.ORDERS_WEBHOOK_SECRET)
        issue("ORDERS_WEBHOOK_SECRET", "ORDERS_WEBHOOK_SECRET is required with ORDERS_WEBHOOK_URL");
    } else if (c.ORDERS_WEBHOOK_SECRET) {
      issue(
        "ORDERS_WEBHOOK_SECRET",
        "ORDERS_WEBHOOK_SECRET is set but ORDERS_WEBHOOK_URL is not: it signs nothing",
      );
    }
    if (c.ORDERS_RETRY_BASE_MS > c.ORDERS_RETRY_MAX_MS)
      issue("ORDERS_RETRY_BASE_MS", "ORDERS_RETRY_BASE_MS must not exceed ORDERS_RETRY_MAX_MS");
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

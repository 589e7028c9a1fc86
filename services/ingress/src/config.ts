import {
  baseSchema,
  ConfigError,
  checkHttpListener,
  checkOpsPort,
  csv,
  devClockUrl,
  httpListenerSettings,
  loadConfig,
  port,
  positiveInt,
  refuseOutsideLocal,
  z,
} from "@taituri/config";

// The values `npm start` (scripts/start.ts) and .env.example give: public, so refused outside local.
const LOCAL = {
  appSecret: "local-app-secret",
  verifyToken: "local-verify-token",
  accessToken: "local-access-token",
};

export const schema = baseSchema
  .extend({
    // Port of the public webhook (GET/POST /webhook): Meta's, and nothing else.
    INGRESS_PORT: port(3000),
    // Port of /healthz, /readyz and /metrics, for probes and scrapers only; differs from INGRESS_PORT.
    INGRESS_OPS_PORT: port(3100),
    // Interface both listen on; 0.0.0.0 in a container, loopback on a laptop.
    INGRESS_HOST: z.string().default("127.0.0.1"),
    // What this process does: `webhook` takes Meta's webhooks; `dispatcher`
    // sends the conversation's replies through the Graph API and tracks their delivery statuses;
    // `all` does both in one process, for a laptop or a test. `npm start` and the chart run the two
    // apart: the internet-facing webhook then holds neither the Graph API token nor a route out, and
    // none of the dispatcher's work (status batches, Graph API retries, media uploads, a crash) can
    // reach Meta's acknowledgements (docs/architecture.md, "Ingress's two roles").
    INGRESS_ROLE: z.enum(["webhook", "dispatcher", "all"]).default("all"),
    // App secret(s) that sign Meta's webhooks, comma-separated: during a rotation both the old and the
    // new secret are accepted, so no webhook is refused while Meta switches over. Outside local each
    // is 32+ bytes (Meta's are 32 hex digits) and not the value `npm start` passes. The webhook's
    // (roles webhook and all) and only its: a dispatcher has no use for it.
    WHATSAPP_APP_SECRET: refuseOutsideLocal(
      csv().pipe(z.array(z.string()).min(1, "at least one secret, comma-separated")).optional(),
      { secret: [LOCAL.appSecret] },
    ),
    // The token Meta echoes on the GET /webhook subscription handshake (roles webhook and all).
    WHATSAPP_VERIFY_TOKEN: refuseOutsideLocal(z.string().optional(), {
      values: [LOCAL.verifyToken],
      instead: "set the verify token of your app's webhook subscription",
    }),
    // System-user access token for the Graph API (outbound messages): the dispatcher's (roles
    // dispatcher and all) and only its, so the internet-facing webhook never holds it.
    WHATSAPP_ACCESS_TOKEN: refuseOutsideLocal(z.string().optional(), {
      values: [LOCAL.accessToken],
      instead: "set your system user's access token",
    }),
    // Graph API base URL, with version. Locally the WhatsApp simulator or a test's fake server.
    WHATSAPP_API_URL: z
      .string()
      .url()
      .default("https://graph.facebook.com/v23.0")
      .transform((url) => url.replace(/\/+$/, "")),
    // Timeouts of the webhook's listener and the ops one (HTTP_REQUEST_TIMEOUT_MS, HTTP_HEADERS_TIMEOUT_MS,
    // HTTP_KEEP_ALIVE_TIMEOUT_MS; packages/config/src/http.ts).
    ...httpListenerSettings,
    // Meta refuses bodies over 3 MB; so do we, before reading further.
    WEBHOOK_BODY_LIMIT_BYTES: positiveInt(3 * 1024 * 1024),
    // Longest wait for Kafka's acknowledgement before answering 503: well inside Meta's own timeout,
    // so Meta sees a clear "retry later" rather than a hung request.
    WEBHOOK_PUBLISH_TIMEOUT_MS: positiveInt(2000),
    // Recently stored event ids kept in memory to drop Meta's retries before Kafka (0 disables).
    // About 100 bytes each; correctness never depends on it.
    WEBHOOK_RECENT_IDS: z.coerce.number().int().min(0).default(100_000),
    // Messages per second per business phone number (Meta's default throughput is 80/s): the
    // number's whole rate. Dispatcher replicas share it as they share the outbound topic's
    // partitions (each paces to its share: pacer.ts paceShare), so every replica is given the same.
    OUTBOUND_RATE_PER_NUMBER: positiveInt(80),
    // A Graph API call that has not answered in this time is abandoned and retried.
    GRAPH_API_TIMEOUT_MS: positiveInt(10_000),
    // How long a dispatcher's claim on a message protects it from a second sender: longer than two
    // Graph API timeouts (a send Meta refuses for its BSUID recipient goes again to the phone number
    // under the same claim), so a live sender is never overtaken; short enough that a crashed
    // sender's message goes out within a minute.
    OUTBOUND_CLAIM_LEASE_MS: positiveInt(60_000),
    // Conversations of one partition whose messages are sent at once (one conversation's go out in
    // order). A send waits ~10 ms on the claim, the Graph API and the record; one at a time capped a
    // partition at about 100 messages/s with the CPU half idle.
    OUTBOUND_KEY_CONCURRENCY: positiveInt(16),
    // Least time between two grouped inserts of the dispatcher's claims / sent records, in ms, under
    // load (GroupInserter; MONGO_INSERT_INTERVAL_MS is the services' general one). The claim is on
    // every reply's path, so it waits less than the record, which only the conversation's next
    // message waits for (the A/B is in bench/README.md).
    OUTBOUND_CLAIM_INTERVAL_MS: z.coerce.number().int().min(0).max(1000).default(5),
    OUTBOUND_RECORD_INTERVAL_MS: z.coerce.number().int().min(0).max(1000).default(10),
    // Outbound claims, take-over attempts, sent records and delivery statuses older than this are
    // deleted. 30 days: Meta reports a message's statuses within days of the send, and a month leaves
    // time to look into a complaint. At least 8: longer than the topics keep their records (7 days), so no outbound
    // message of a deleted claim can be delivered again and sent twice.
    INGRESS_RETENTION_DAYS: z.coerce.number().int().min(8).default(30),
    // How often outbound records past their retention are looked for (by dispatcher processes).
    INGRESS_RETENTION_SWEEP_MS: positiveInt(3600 * 1000),
    // A development clock to follow (the WhatsApp simulator's): the 24-hour window is judged on it.
    // Refused outside local.
    DEV_CLOCK_URL: devClockUrl(),
  })
  .superRefine((config, ctx) => {
    for (const [name, roles] of ROLE_SETTINGS)
      if (roles.includes(config.INGRESS_ROLE) && config[name] === undefined)
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `required with INGRESS_ROLE=${config.INGRESS_ROLE}`,
        });
    checkHttpListener(config, ctx);
    checkOpsPort(config, ctx, { publicPort: "INGRESS_PORT", opsPort: "INGRESS_OPS_PORT" });
    if (config.OUTBOUND_CLAIM_LEASE_MS <= 2 * config.GRAPH_API_TIMEOUT_MS)
      ctx.addIssue({
        code: "custom",
        path: ["OUTBOUND_CLAIM_LEASE_MS"],
        message: `must be more than twice GRAPH_API_TIMEOUT_MS (${config.GRAPH_API_TIMEOUT_MS}): a claim covers a send and its resend to the phone number`,
      });
  });

export type IngressConfig = z.infer<typeof schema>;
export type IngressRole = IngressConfig["INGRESS_ROLE"];

/** The settings each role cannot do without: optional in the schema, required by the role. */
const ROLE_SETTINGS: [keyof IngressConfig, IngressRole[]][] = [
  ["WHATSAPP_APP_SECRET", ["webhook", "all"]],
  ["WHATSAPP_VERIFY_TOKEN", ["webhook", "all"]],
  ["WHATSAPP_ACCESS_TOKEN", ["dispatcher", "all"]],
];

/** A setting its role requires (the schema has checked it is there). */
export function roleSetting<
  K extends "WHATSAPP_APP_SECRET" | "WHATSAPP_VERIFY_TOKEN" | "WHATSAPP_ACCESS_TOKEN",
>(config: IngressConfig, name: K): NonNullable<IngressConfig[K]> {
  const value = config[name];
  if (value === undefined) throw new Error(`${name} is required with INGRESS_ROLE=${config.INGRESS_ROLE}`);
  return value as NonNullable<IngressConfig[K]>;
}

export function loadIngressConfig(env: Record<string, string | undefined> = process.env): IngressConfig {
  // The flag INGRESS_ROLE replaced: a deployment that still sets it would otherwise run a role it
  // did not ask for without a word.
  if (env.OUTBOUND_DISPATCHER?.trim())
    throw new ConfigError([
      "OUTBOUND_DISPATCHER: replaced by INGRESS_ROLE (webhook, dispatcher or all): unset it",
    ]);
  return loadConfig(schema, env);
}

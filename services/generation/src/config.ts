import { fileURLToPath } from "node:url";
import { baseSchema, loadConfig, port, positiveInt, refuseOutsideLocal, z } from "@taituri/config";
// The contracts alone, not @taituri/proto's index: config loads before telemetry starts, and the
// index loads @grpc/grpc-js, which would then escape its instrumentation (no limiter spans).
import * as contracts from "@taituri/proto/contracts";

const data = (file: string) => fileURLToPath(new URL(`../data/${file}`, import.meta.url));

/** The key `npm start` gives the generation service and the WhatsApp simulator's images endpoint. */
export const LOCAL_OPENAI_KEY = "local-openai-key";

/** Time kept free at the end of a lease to store the images and record the result. */
export const ATTEMPT_MARGIN_MS = contracts.ROUND_TIMING.attemptMarginMs;

export const schema = baseSchema
  .extend({
    // Port of /healthz, /readyz and /metrics.
    GENERATION_PORT: port(3002),
    GENERATION_HOST: z.string().default("127.0.0.1"),
    // Which image provider makes the designs: `local` renders offline for free, `openai` calls
    // the OpenAI images API (and costs money). Outside local, `local` is refused with no opt-in:
    // its designs are one SVG template with the name and a caption, and a shopper would pay for one
    // printed on a mug. A staging deployment that must not pay OpenAI points OPENAI_BASE_URL at a
    // stand-in instead.
    IMAGE_PROVIDER: refuseOutsideLocal(z.enum(["local", "openai"]).default("local"), {
      values: ["local"],
      is: "the local provider, whose designs are placeholders",
      instead: "set IMAGE_PROVIDER=openai",
    }),
    // Most designs one round makes, whatever the request asks (the shop's designsPerRound).
    GENERATION_MAX_DESIGNS: z.coerce.number().int().min(1).max(10).default(4),
    // How long a claimed round belongs to its worker. A worker starts no call that could outlast
    // it (see ATTEMPT_MARGIN_MS), so a live worker is never taken over; a crashed one's round
    // waits this long for another delivery to finish it. With OPENAI_TIMEOUT_MS, within the
    // conversation's GENERATION_DEADLINE_MS (contracts.ROUND_TIMING), so a take-over's designs
    // still reach the shopper.
    GENERATION_LEASE_MS: positiveInt(contracts.ROUND_TIMING.leaseMs),
    // How long SIGTERM waits for the rounds in hand before cancelling their provider calls and
    // releasing their leases for another replica (which may pay again: docs/generation.md). Unset:
    // GENERATION_LEASE_MS, which no attempt outlasts, so a call in flight always finishes. The
    // pod's terminationGracePeriodSeconds must exceed it (the chart refuses otherwise).
    GENERATION_DRAIN_MS: z.coerce.number().int().positive().optional(),
    // Claims a round may have: the first plus take-overs after a crash. Each claim makes at most
    // one call the provider may bill, so this is the most paid calls a round can cost.
    GENERATION_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(5).default(2),
    // Rounds, their markers and designs older than this are deleted (the cost ledger stays). At
    // least 8: longer than the topics keep their records (7 days), so no request of a deleted round
    // can be delivered again and make it anew, and longer than a design link lives (payment's
    // ORDERS_IMAGE_URL_TTL_S, 7 days), which an order's delivery to the shop sends soon after payment
    // (a delivery still retried past the retention links a design that is gone: docs/security.md).
    GENERATION_RETENTION_DAYS: z.coerce.number().int().min(8).default(90),
    // How often rounds past their retention are looked for.
    GENERATION_RETENTION_SWEEP_MS: positiveInt(3600 * 1000),
    // Partitions handled at once; order within each is kept.
    CONSUMER_CONCURRENCY: positiveInt(3),
    // Prompt templates (per product, theme and style) and the local renderer's captions.
    PROMPTS_FILE: z.string().default(data("prompts.json")),
    // Estimated price per image for each provider, model, quality and size.
    PRICES_FILE: z.string().default(data("prices.json")),
    // Width and height of the local provider's PNGs.
    LOCAL_IMAGE_SIZE: z.coerce.number().int().min(64).max(2048).default(512),
    // A pause before each local render: a stand-in for a slow model (demos, crash tests).
    LOCAL_PROVIDER_DELAY_MS: z.coerce.number().int().min(0).default(0),
    // OpenAI key; required when IMAGE_PROVIDER=openai. The one `npm start` gives the WhatsApp
    // simulator's images endpoint is public: refused outside local.
    OPENAI_API_KEY: refuseOutsideLocal(z.string().optional(), {
      values: [LOCAL_OPENAI_KEY],
      is: "the key of the WhatsApp simulator's images endpoint (npm start)",
      instead: "set your OpenAI API key, or your gateway's",
    }),
    // OpenAI-compatible base URL (proxy, Azure-style gateway, a local fake); the SDK's default when unset.
    OPENAI_BASE_URL: z.string().url().optional(),
    OPENAI_IMAGE_MODEL: z.string().default("gpt-image-1"),
    // 1024x1024, 1024x1536, 1536x1024 or auto (GPT image models).
    OPENAI_IMAGE_SIZE: z.string().default("1024x1024"),
    // low, medium, high or auto: the main driver of price and latency.
    OPENAI_IMAGE_QUALITY: z.string().default("medium"),
    // One images request; gpt-image-1 at high quality takes up to about a minute.
    OPENAI_TIMEOUT_MS: positiveInt(contracts.ROUND_TIMING.providerTimeoutMs),
    // Retries of a call OpenAI did not bill (429 rate limit, connection refused), never of others.
    OPENAI_MAX_RETRIES: z.coerce.number().int().min(0).max(5).default(2),
    // First wait before such a retry (doubling, with jitter; a 429's retry-after wins).
    OPENAI_RETRY_BASE_MS: positiveInt(1000),
    // The limiter's gRPC address (host:port).
    LIMITER_URL: z.string().min(1).default("127.0.0.1:50051"),
    // Deadline of one limiter call; past it the round fails closed (no provider call).
    LIMITER_TIMEOUT_MS: positiveInt(2000),
    // The limiter rule set a round consumes.
    LIMITER_RULE_SET: z.string().min(1).default("generation-round"),
    // The rule set's maxCost: a round's cost in cents is capped to it.
    LIMITER_MAX_COST: positiveInt(500),
    // OIDC issuer of the tokens we present to the limiter; its token endpoint is OIDC_TOKEN_URL.
    OIDC_ISSUER_URL: refuseOutsideLocal(z.string().url().default("http://127.0.0.1:3010"), {
      loopbackIssuer: true,
    }),
    // Client-credentials token endpoint; `${OIDC_ISSUER_URL}/token` when unset (the local issuer's).
    OIDC_TOKEN_URL: z.string().url().optional(),
    OIDC_CLIENT_ID: z.string().min(1).default("generation"),
    // Client secret for the client-credentials grant. Not needed with OIDC_TOKEN_FILE. The one
    // `npm start` gives its local issuer's client is public.
    OIDC_CLIENT_SECRET: refuseOutsideLocal(z.string().optional(), {
      values: ["local-generation"],
      instead: "set the generation client's secret at your issuer, or OIDC_TOKEN_FILE",
    }),
    // A projected service-account token file (Kubernetes), re-read as the kubelet rotates it;
    // used instead of client credentials when set.
    OIDC_TOKEN_FILE: z.string().optional(),
    // The `aud` the limiter expects.
    LIMITER_AUDIENCE: z.string().min(1).default("limiter"),
  })
  .superRefine((config, ctx) => {
    if (config.IMAGE_PROVIDER !== "openai") return;
    if (!config.OPENAI_API_KEY)
      ctx.addIssue({
        code: "custom",
        path: ["OPENAI_API_KEY"],
        message: "required when IMAGE_PROVIDER=openai",
      });
    // A worker only starts a call that can end (timeout included) 5 s before its lease does.
    const minimum = config.OPENAI_TIMEOUT_MS + ATTEMPT_MARGIN_MS;
    if (config.GENERATION_LEASE_MS < minimum)
      ctx.addIssue({
        code: "custom",
        path: ["GENERATION_LEASE_MS"],
        message: `must be at least OPENAI_TIMEOUT_MS + ${ATTEMPT_MARGIN_MS} (${minimum}) so a live worker is never taken over`,
      });
  });

export type GenerationConfig = z.infer<typeof schema>;

/** How long a shutdown waits for the rounds in hand (GENERATION_DRAIN_MS, or the lease). */
export const drainMs = (config: GenerationConfig): number =>
  config.GENERATION_DRAIN_MS ?? config.GENERATION_LEASE_MS;

export const loadGenerationConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

import { fileURLToPath } from "node:url";
import {
  baseSchema,
  csv,
  KAFKA_SASL_MECHANISMS,
  loadConfig,
  oidcVerifierFields,
  port,
  positiveInt,
  refuseOutsideLocal,
  z,
} from "@taituri/config";

export const schema = baseSchema.extend({
  // The limiter does not use Kafka: no login to refuse (baseSchema's mark would).
  KAFKA_SASL_MECHANISM: z.enum(KAFKA_SASL_MECHANISMS).optional(),
  // gRPC port of the LimiterService and of grpc.health.v1.
  LIMITER_GRPC_PORT: port(50051),
  // Port of /healthz, /readyz and /metrics.
  LIMITER_PORT: port(3004),
  LIMITER_HOST: z.string().default("127.0.0.1"),
  // The YAML rules (docs/limiter.md); reloaded when it changes.
  LIMITER_RULES_FILE: z.string().default(fileURLToPath(new URL("../rules/limits.yaml", import.meta.url))),
  // Processes that share the gRPC port (node:cluster), each deciding on its own Redis connection:
  // one Node process uses one core for gRPC and protobuf work. The primary serves the ops port with
  // the workers' metrics summed.
  LIMITER_WORKERS: positiveInt(1),
  // Young-generation semi-space of the processes that serve calls, in MB (V8's --max-semi-space-size;
  // Node's default lets it grow to 32). Every call's objects die young, and a scavenge of a large
  // young generation under load set the limiter's p99 (bench/README.md). V8 reads it only at start:
  // the primary passes it to the workers it forks; a single process takes it from its launch (the
  // Helm chart sets NODE_OPTIONS from the same value). A --max-semi-space-size already given wins.
  LIMITER_SEMI_SPACE_MB: positiveInt(4),
  // How often the rules file is checked for changes.
  LIMITER_RULES_POLL_MS: positiveInt(2000),
  // Hash tag of every Redis key: one Redis Cluster slot per deployment (docs/limiter.md).
  LIMITER_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .default("limiter"),
  // Comma-separated host:port seed nodes of a Redis Cluster; when set the limiter talks to the
  // cluster (all keys in one slot, see LIMITER_KEY_PREFIX) and REDIS_URL is not used.
  LIMITER_REDIS_CLUSTER_NODES: csv()
    .pipe(z.array(z.string().regex(/^[^:\s]+:\d{1,5}$/, "expected host:port")))
    .default([]),
  // A Redis call slower than this fails, and the rule set's onRedisError decides.
  LIMITER_REDIS_TIMEOUT_MS: positiveInt(250),
  // OIDC issuer whose tokens every RPC must carry (discovery + JWKS). Locally @taituri/oidc's
  // issuer; in Kubernetes the API server's service-account issuer (projected tokens).
  OIDC_ISSUER_URL: refuseOutsideLocal(z.string().url().default("http://127.0.0.1:3010"), {
    loopbackIssuer: true,
  }),
  ...oidcVerifierFields,
  // The `aud` the tokens must name.
  LIMITER_AUDIENCE: z.string().min(1).default("limiter"),
  // Comma-separated callers the limiter answers (a token's client_id, else azp, else sub; in
  // Kubernetes system:serviceaccount:<namespace>:<name>); anyone else gets PERMISSION_DENIED. Locally
  // the generation service's client and the operator CLI's (`npm run limiter`).
  LIMITER_CALLERS: csv().default(["generation", "limiter-admin"]),
  // Peek and ResetUsage are admin-only: a listed caller whose space-separated `scope` claim holds
  // this scope may call them (the local issuer grants scopes per client)...
  LIMITER_ADMIN_SCOPE: z.string().min(1).default("limiter.admin"),
  // ...and so may these comma-separated callers, for issuers that put no scope in tokens
  // (Kubernetes projected tokens: system:serviceaccount:<namespace>:<name>).
  LIMITER_ADMIN_SUBJECTS: csv().default([]),
});

export type LimiterConfig = z.infer<typeof schema>;

export const loadLimiterConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

/** Settings of the admin CLI (src/cli.ts); each can also be given as a flag, which wins. */
export const cliSchema = z.object({
  // The limiter's gRPC address (host:port).
  LIMITER_URL: z.string().min(1).default("127.0.0.1:50051"),
  // Issuer of the CLI's token; its client-credentials endpoint is OIDC_TOKEN_URL.
  OIDC_ISSUER_URL: z.string().url().default("http://127.0.0.1:3010"),
  // Token endpoint; `${OIDC_ISSUER_URL}/token` when unset (the local issuer's).
  OIDC_TOKEN_URL: z.string().url().optional(),
  // OAuth client of the operator; it needs LIMITER_ADMIN_SCOPE (or to be an admin subject).
  OIDC_CLIENT_ID: z.string().min(1).default("limiter-admin"),
  // Its secret. Not needed with OIDC_TOKEN_FILE.
  OIDC_CLIENT_SECRET: z.string().optional(),
  // A ready token instead of client credentials (e.g. `kubectl create token … --audience limiter`).
  OIDC_TOKEN_FILE: z.string().optional(),
  // Space-separated scopes to ask for; unset: whatever the issuer grants the client by default.
  OIDC_SCOPE: z.string().optional(),
  // The `aud` the limiter expects.
  LIMITER_AUDIENCE: z.string().min(1).default("limiter"),
  // Deadline of the token request and of the RPC.
  LIMITER_CLI_TIMEOUT_MS: positiveInt(5000),
});

export type CliConfig = z.infer<typeof cliSchema>;

/** The CLI's settings: the environment, overridden by `flags` (same names). */
export const loadCliConfig = (flags: Record<string, string | undefined>) =>
  loadConfig(cliSchema, { ...process.env, ...flags });

import { fileURLToPath } from "node:url";
import { baseSchema, loadConfig, port, positiveInt, z } from "@taituri/config";

export const schema = baseSchema.extend({
  // gRPC port of the LimiterService and of grpc.health.v1.
  LIMITER_GRPC_PORT: port(50051),
  // Port of /healthz, /readyz and /metrics.
  LIMITER_PORT: port(3004),
  LIMITER_HOST: z.string().default("127.0.0.1"),
  // The YAML rules (docs/limiter.md); reloaded when it changes.
  LIMITER_RULES_FILE: z.string().default(fileURLToPath(new URL("../rules/limits.yaml", import.meta.url))),
  // How often the rules file is checked for changes.
  LIMITER_RULES_POLL_MS: positiveInt(2000),
  // Hash tag of every Redis key: one Redis Cluster slot per deployment (docs/limiter.md).
  LIMITER_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .default("limiter"),
  // A Redis call slower than this fails, and the rule set's onRedisError decides.
  LIMITER_REDIS_TIMEOUT_MS: positiveInt(250),
  // OIDC issuer whose tokens every RPC must carry (discovery + JWKS). Locally @taituri/oidc's
  // issuer; in Kubernetes the API server's service-account issuer (projected tokens).
  OIDC_ISSUER_URL: z.string().url().default("http://127.0.0.1:3010"),
  // The `aud` the tokens must name.
  LIMITER_AUDIENCE: z.string().min(1).default("limiter"),
});

export type LimiterConfig = z.infer<typeof schema>;

export const loadLimiterConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

import { baseSchema, loadConfig, port, z } from "@taituri/config";

export const schema = baseSchema.extend({
  // gRPC port of the LimiterService and of grpc.health.v1.
  LIMITER_GRPC_PORT: port(50051),
  // Port of /healthz, /readyz and /metrics.
  LIMITER_PORT: port(3004),
  LIMITER_HOST: z.string().default("127.0.0.1"),
});

export type LimiterConfig = z.infer<typeof schema>;

export const loadLimiterConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

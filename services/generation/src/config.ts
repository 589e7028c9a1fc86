import { baseSchema, loadConfig, port, z } from "@taituri/config";

export const schema = baseSchema.extend({
  // Port of /healthz, /readyz and /metrics.
  GENERATION_PORT: port(3002),
  GENERATION_HOST: z.string().default("127.0.0.1"),
});

export type GenerationConfig = z.infer<typeof schema>;

export const loadGenerationConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

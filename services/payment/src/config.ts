import { baseSchema, loadConfig, port, z } from "@taituri/config";

export const schema = baseSchema.extend({
  // Port of /healthz, /readyz and /metrics.
  PAYMENT_PORT: port(3003),
  PAYMENT_HOST: z.string().default("127.0.0.1"),
});

export type PaymentConfig = z.infer<typeof schema>;

export const loadPaymentConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

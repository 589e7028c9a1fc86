import type { Logger } from "@taituri/logging";
import { connectBackbone, type RunningService, serveOps } from "@taituri/service";
import type { PaymentConfig } from "./config.ts";

/**
 * The payment service's process: its dependencies (Kafka for payment requests and results,
 * MongoDB for orders) and its ops endpoints. The order consumer joins here when orders exist.
 */
export async function startPaymentService(config: PaymentConfig, logger: Logger): Promise<RunningService> {
  const backbone = await connectBackbone("payment", config, logger);
  return serveOps(backbone, { port: config.PAYMENT_PORT, host: config.PAYMENT_HOST });
}

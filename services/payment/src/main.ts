import { exitOnConfigError } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import { onShutdown } from "@taituri/ops";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { loadPaymentConfig } from "./config.ts";

const config = exitOnConfigError(() => loadPaymentConfig());
const telemetry = startTelemetry({ serviceName: "payment", environment: config.DEPLOYMENT_ENVIRONMENT });
const logger = createLogger({
  service: "payment",
  level: config.LOG_LEVEL,
  environment: config.DEPLOYMENT_ENVIRONMENT,
});
// Imported after the SDK has started, so instrumentation sees the libraries load.
const { startPaymentService } = await import("./service.ts");
const service = await startPaymentService(config, logger);
logger.info({ ops: service.opsUrl }, "ready");
onShutdown(
  async () => {
    await service.stop();
    await telemetry.shutdown();
  },
  (message) => logger.info(message),
);

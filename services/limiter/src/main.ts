import { exitOnConfigError } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import { onShutdown } from "@taituri/ops";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { loadLimiterConfig } from "./config.ts";

const config = exitOnConfigError(() => loadLimiterConfig());
const telemetry = startTelemetry({ serviceName: "limiter", environment: config.DEPLOYMENT_ENVIRONMENT });
const logger = createLogger({
  service: "limiter",
  level: config.LOG_LEVEL,
  environment: config.DEPLOYMENT_ENVIRONMENT,
});
// Imported after the SDK has started, so instrumentation sees the libraries load.
const { startLimiterService } = await import("./service.ts");
const service = await startLimiterService(config, logger);
logger.info({ grpc: service.grpcAddress, ops: service.opsUrl }, "ready");
onShutdown(
  async () => {
    await service.stop();
    await telemetry.shutdown();
  },
  (message) => logger.info(message),
);

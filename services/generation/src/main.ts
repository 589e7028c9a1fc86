import { exitOnConfigError } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import { onShutdown } from "@taituri/ops";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { loadGenerationConfig } from "./config.ts";

const config = exitOnConfigError(() => loadGenerationConfig());
const telemetry = startTelemetry({ serviceName: "generation", environment: config.DEPLOYMENT_ENVIRONMENT });
const logger = createLogger({
  service: "generation",
  level: config.LOG_LEVEL,
  environment: config.DEPLOYMENT_ENVIRONMENT,
});
// Imported after the SDK has started, so instrumentation sees the libraries load.
const { startGenerationService } = await import("./service.ts");
const service = await startGenerationService(config, logger);
logger.info({ ops: service.opsUrl }, "ready");
onShutdown(
  async () => {
    await service.stop();
    await telemetry.shutdown();
  },
  (message) => logger.info(message),
);

import { exitOnConfigError } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import { onShutdown } from "@taituri/ops";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { loadConversationConfig } from "./config.ts";

const config = exitOnConfigError(() => loadConversationConfig());
const telemetry = startTelemetry({ serviceName: "conversation", environment: config.DEPLOYMENT_ENVIRONMENT });
const logger = createLogger({
  service: "conversation",
  level: config.LOG_LEVEL,
  environment: config.DEPLOYMENT_ENVIRONMENT,
});
// Imported after the SDK has started, so instrumentation sees the libraries load.
const { startConversationService } = await import("./service.ts");
const service = await startConversationService(config, logger);
logger.info({ ops: service.opsUrl }, "ready");
onShutdown(
  async () => {
    await service.stop();
    await telemetry.shutdown();
  },
  (message) => logger.info(message),
);

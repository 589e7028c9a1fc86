import { exitOnConfigError } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import { onShutdown } from "@taituri/ops";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { loadIngressConfig } from "./config.ts";

const config = exitOnConfigError(() => loadIngressConfig());
const telemetry = startTelemetry({ serviceName: "ingress", environment: config.DEPLOYMENT_ENVIRONMENT });
const logger = createLogger({
  service: "ingress",
  level: config.LOG_LEVEL,
  environment: config.DEPLOYMENT_ENVIRONMENT,
});
// Imported after the SDK has started, so instrumentation sees the libraries load.
const { startIngressService } = await import("./service.ts");
const service = await startIngressService(config, logger);
logger.info({ webhook: `${service.url}/webhook` }, "ready");
onShutdown(
  async () => {
    await service.stop();
    await telemetry.shutdown();
  },
  (message) => logger.info(message),
);

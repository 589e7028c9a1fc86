import cluster from "node:cluster";
import { exitOnConfigError } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import { runService } from "@taituri/service";
import { loadLimiterConfig } from "./config.ts";

const config = exitOnConfigError(() => loadLimiterConfig());
const several = config.LIMITER_WORKERS > 1;

if (several && cluster.isPrimary) {
  const { runPrimary } = await import("./workers.ts");
  await runPrimary(
    config,
    createLogger({ service: "limiter", level: config.LOG_LEVEL, environment: config.DEPLOYMENT_ENVIRONMENT }),
  );
} else {
  await runService({
    name: "limiter",
    loadConfig: () => config,
    // Imported after telemetry has started, so instrumentation sees the libraries load.
    load: async () => {
      const { startLimiterService } = await import("./service.ts");
      if (!several) return startLimiterService;
      const { reportToPrimary } = await import("./workers.ts");
      return async (c, logger) => {
        const service = await startLimiterService(c, logger, { serveOps: false });
        reportToPrimary(service.registry);
        return service;
      };
    },
  });
}

import cluster from "node:cluster";
import { setFlagsFromString } from "node:v8";
import { exitOnConfigError } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import { runService } from "@taituri/service";
import { loadLimiterConfig } from "./config.ts";

// Every call allocates the same short-lived objects (grpc-js's call and stream, http2's, ioredis's
// command and reply). Enough of them outlive a scavenge under load that V8 starts allocating them
// straight in the old generation, where they pile up as garbage for long mark-compacts that set the
// p99 (bench/README.md). The flag is read at collection time, so setting it here works; each
// cluster worker runs this file too.
setFlagsFromString("--no-allocation-site-pretenuring");

const config = exitOnConfigError(() => loadLimiterConfig());
const several = config.LIMITER_WORKERS > 1;

if (several && cluster.isPrimary) {
  const { runPrimary } = await import("./workers.ts");
  await runPrimary(
    config,
    createLogger({
      service: "limiter",
      level: config.LOG_LEVEL,
      format: config.LOG_FORMAT,
      environment: config.DEPLOYMENT_ENVIRONMENT,
    }),
  );
} else {
  await runService({
    name: "limiter",
    loadConfig: () => config,
    // Imported after telemetry has started, so instrumentation sees the libraries load.
    load: async () => {
      const { startLimiterService } = await import("./service.ts");
      if (!several) {
        const { semiSpaceGiven } = await import("./workers.ts");
        return async (c, logger) => {
          // One process cannot size its own young generation (V8 reads it at start): say so.
          if (!semiSpaceGiven(process.execArgv, process.env.NODE_OPTIONS))
            logger.info(
              { recommended: `NODE_OPTIONS=--max-semi-space-size=${c.LIMITER_SEMI_SPACE_MB}` },
              "young generation left at Node's default; its scavenges set the p99 under load (LIMITER_SEMI_SPACE_MB)",
            );
          // Serving at once: /readyz and the health service say that it waits for Redis, if it does.
          return startLimiterService(c, logger, { waitForDependencies: false });
        };
      }
      const { reportToPrimary } = await import("./workers.ts");
      return async (c, logger) => {
        // Ready for the primary once its gRPC server is bound; whether Redis answers is the
        // `redis` check, which the primary asks of every worker at each /readyz.
        const service = await startLimiterService(c, logger, {
          serveOps: false,
          waitForDependencies: false,
        });
        reportToPrimary(service.registry, service.checks);
        return service;
      };
    },
  });
}

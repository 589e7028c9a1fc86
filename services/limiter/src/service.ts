import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { Logger } from "@taituri/logging";
import { createOpsServer, createRegistry } from "@taituri/ops";
import { limiter } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { HealthImplementation } from "grpc-health-check";
import { Redis } from "ioredis";
import type { LimiterConfig } from "./config.ts";

const notYet = {
  code: status.UNIMPLEMENTED,
  details: "rate limiting rules are not configured in this release",
};

/**
 * The limiter's gRPC server, with the standard health service so that probes and load balancers
 * can tell whether Redis is reachable. Consume, Refund and Peek answer UNIMPLEMENTED until the rule
 * engine lands; callers treat that as "not allowed" (fail closed).
 */
export async function startLimiterService(config: LimiterConfig, logger: Logger): Promise<RunningService> {
  const registry = createRegistry("limiter");
  const redis = new Redis(config.REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
  });
  await redis.connect();
  redis.on("error", (error) => logger.warn({ err: error }, "redis connection error"));

  const health = new HealthImplementation({ "": "SERVING", [serviceName]: "SERVING" });
  const server = new Server();
  health.addToServer(server);
  server.addService(limiter.LimiterServiceService, {
    consume: (_call, callback) => callback(notYet),
    refund: (_call, callback) => callback(notYet),
    peek: (_call, callback) => callback(notYet),
  } satisfies limiter.LimiterServiceServer);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${config.LIMITER_HOST}:${config.LIMITER_GRPC_PORT}`,
      ServerCredentials.createInsecure(),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  // Health follows Redis: without it no decision can be made.
  redis.on("ready", () => health.setStatus(serviceName, "SERVING"));
  redis.on("close", () => health.setStatus(serviceName, "NOT_SERVING"));

  const ops = createOpsServer({ registry, checks: { redis: () => redis.ping() } });
  const opsUrl = await ops.listen({ port: config.LIMITER_PORT, host: config.LIMITER_HOST });
  return {
    endpoints: { grpc: `${config.LIMITER_HOST}:${grpcPort}`, ops: opsUrl },
    registry,
    async stop() {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await ops.close();
      redis.disconnect();
    },
  };
}

const serviceName = "limiter.v1.LimiterService";

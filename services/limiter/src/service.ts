import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "@taituri/logging";
import { createVerifier, type Verifier } from "@taituri/oidc";
import { createOpsServer, createRegistry } from "@taituri/ops";
import { limiter } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { HealthImplementation } from "grpc-health-check";
import { Cluster, Redis } from "ioredis";
import { createHandlers } from "./adapters/grpc.ts";
import { redisSecurity } from "./adapters/redis-connection.ts";
import { watchRules } from "./adapters/rules-file.ts";
import { createStore } from "./adapters/store.ts";
import type { LimiterConfig } from "./config.ts";
import { createMetrics } from "./metrics.ts";

export interface LimiterOptions {
  /** Replaces the OIDC verifier built from the config (tests). */
  verifier?: Verifier;
  /** A fixed clock for the Redis script (tests); by default Redis TIME. */
  now?: () => number;
  /**
   * False in a worker of several (LIMITER_WORKERS): the primary process serves /healthz, /readyz
   * and /metrics for all of them, the workers only gRPC.
   */
  serveOps?: boolean;
}

/**
 * The limiter's gRPC server: LimiterService (every RPC authenticated with an OIDC bearer token and
 * authorized per caller, domain/access.ts) and the standard grpc.health.v1 service, open for
 * probes, which follows Redis.
 */
export async function startLimiterService(
  config: LimiterConfig,
  logger: Logger,
  options: LimiterOptions = {},
): Promise<RunningService> {
  const registry = createRegistry("limiter");
  const metrics = createMetrics(registry);
  const rules = watchRules(config.LIMITER_RULES_FILE, {
    intervalMs: config.LIMITER_RULES_POLL_MS,
    onReload: (error) => {
      metrics.reloads.inc({ result: error ? "error" : "ok" });
      if (error)
        logger.error({ err: error, file: config.LIMITER_RULES_FILE }, "rules not reloaded, old rules stay");
      else logger.info({ file: config.LIMITER_RULES_FILE }, "rules reloaded");
    },
  });
  const redis = connectRedis(config);
  redis.on("error", (error) => logger.warn({ err: error }, "redis connection error"));
  await redis.connect();

  const verifier =
    options.verifier ?? createVerifier({ issuer: config.OIDC_ISSUER_URL, audience: config.LIMITER_AUDIENCE });
  const store = createStore({ redis, prefix: config.LIMITER_KEY_PREFIX, now: options.now });

  const health = new HealthImplementation({ "": "SERVING", [serviceName]: "SERVING" });
  const server = new Server();
  health.addToServer(server);
  server.addService(
    limiter.LimiterServiceService,
    createHandlers({
      store,
      rules: rules.current,
      verifier,
      access: {
        callers: config.LIMITER_CALLERS,
        adminScope: config.LIMITER_ADMIN_SCOPE,
        adminSubjects: config.LIMITER_ADMIN_SUBJECTS,
      },
      metrics,
      logger,
    }),
  );
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

  const ops =
    options.serveOps === false
      ? undefined
      : createOpsServer({ registry, checks: { redis: () => redis.ping() } });
  const opsUrl = await ops?.listen({ port: config.LIMITER_PORT, host: config.LIMITER_HOST });
  return {
    endpoints: { grpc: `${config.LIMITER_HOST}:${grpcPort}`, ...(opsUrl ? { ops: opsUrl } : {}) },
    registry,
    async stop() {
      rules.stop();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await ops?.close();
      redis.disconnect();
    },
  };
}

const serviceName = "limiter.v1.LimiterService";

/**
 * One Redis (REDIS_URL) or a Redis Cluster (LIMITER_REDIS_CLUSTER_NODES), with the credentials and
 * TLS of REDIS_USERNAME, REDIS_PASSWORD and REDIS_TLS on every node. The cluster client sends
 * each script to the node owning its keys' slot and follows MOVED/ASK after a resharding or
 * failover; every limiter key has one hash tag, so a call never spans two slots.
 */
function connectRedis(config: LimiterConfig): Redis | Cluster {
  const options = {
    maxRetriesPerRequest: 1,
    commandTimeout: config.LIMITER_REDIS_TIMEOUT_MS,
    ...redisSecurity(config),
  };
  // Concurrent calls share one write to the socket: most of the throughput at high load.
  const common = { lazyConnect: true, enableOfflineQueue: false, enableAutoPipelining: true };
  const nodes = config.LIMITER_REDIS_CLUSTER_NODES;
  if (nodes.length === 0) return new Redis(config.REDIS_URL, { ...options, ...common });
  return new Cluster(
    nodes.map((node) => {
      const colon = node.lastIndexOf(":");
      return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
    }),
    { ...common, redisOptions: options },
  );
}

import { Server, ServerCredentials } from "@grpc/grpc-js";
import { oidcVerifierOptions } from "@taituri/config";
import type { Logger } from "@taituri/logging";
import { createVerifier, type Verifier } from "@taituri/oidc";
import { createOpsServer, createRegistry } from "@taituri/ops";
import { limiter } from "@taituri/proto";
import {
  failureReason,
  type RunningService,
  returnStarted,
  type StartOptions,
  StartStep,
} from "@taituri/service";
import { HealthImplementation } from "grpc-health-check";
import { Cluster, Redis } from "ioredis";
import { createHandlers } from "./adapters/grpc.ts";
import { redisSecurity } from "./adapters/redis-connection.ts";
import { watchRules } from "./adapters/rules-file.ts";
import { createStore } from "./adapters/store.ts";
import type { LimiterConfig } from "./config.ts";
import { createMetrics } from "./metrics.ts";

export interface LimiterOptions extends StartOptions {
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

/** The limiter, with its readiness checks: a worker of several runs them for the primary's /readyz. */
export interface RunningLimiter extends RunningService {
  checks: LimiterChecks;
}

/** What /readyz checks: `redis`, reached and answering a PING (no Redis, no decision). */
export type LimiterChecks = { redis: () => Promise<void> };

/**
 * The limiter's gRPC server: LimiterService (every RPC authenticated with an OIDC bearer token and
 * authorized per caller, domain/access.ts) and the standard grpc.health.v1 service, open for
 * probes, which follows Redis.
 */
export async function startLimiterService(
  config: LimiterConfig,
  logger: Logger,
  options: LimiterOptions = {},
): Promise<RunningLimiter> {
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
  const address =
    config.LIMITER_REDIS_CLUSTER_NODES.length > 0
      ? config.LIMITER_REDIS_CLUSTER_NODES.join(",")
      : redisAddress(config.REDIS_URL);
  // ioredis reconnects by itself, every 2 s at most, so that the limiter is back within seconds of
  // Redis; what it met on the way is kept for the log lines below rather than logged each time.
  let lastError: unknown;
  redis.on("error", (error) => {
    lastError = error;
  });
  // Started in the background (below, once the servers are up): the limiter serves (failing
  // closed: no Redis, no decision) and says on /readyz and the health service that it waits for
  // Redis, one log line per retry window.
  const reached = new StartStep({
    name: "redis",
    address,
    attempt: async () => {
      if (redis.status !== "ready") await nextConnection(redis, config.LIMITER_REDIS_TIMEOUT_MS + 5000);
      await redis.ping();
    },
    ping: () => redis.ping(),
    logger,
  });
  // After the start, an outage is one line when it begins and one when it ends.
  let lost = false;
  redis.on("close", () => {
    if (reached.state !== "up" || lost) return;
    lost = true;
    logger.warn({ step: "redis", reason: failureReason(lastError) }, `lost redis (${address}); reconnecting`);
  });
  redis.on("ready", () => {
    if (!lost) return;
    lost = false;
    logger.info({ step: "redis" }, `redis (${address}) back`);
  });

  const verifier =
    options.verifier ??
    createVerifier({
      issuer: config.OIDC_ISSUER_URL,
      audience: config.LIMITER_AUDIENCE,
      ...oidcVerifierOptions(config),
    });
  const store = createStore({ redis, prefix: config.LIMITER_KEY_PREFIX, now: options.now });

  const health = new HealthImplementation({
    "": "SERVING",
    [serviceName]: redis.status === "ready" ? "SERVING" : "NOT_SERVING",
  });
  // Health follows Redis: without it no decision can be made.
  redis.on("ready", () => health.setStatus(serviceName, "SERVING"));
  redis.on("close", () => health.setStatus(serviceName, "NOT_SERVING"));
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

  const checks: LimiterChecks = { redis: () => reached.check() };
  const ops = options.serveOps === false ? undefined : createOpsServer({ registry, checks });
  const opsUrl = await ops?.listen({ port: config.LIMITER_PORT, host: config.LIMITER_HOST });
  // Connected only now, with the start's synchronous work done: ioredis's ready check (INFO) is
  // bound by LIMITER_REDIS_TIMEOUT_MS (250 ms), and a connect made before the gRPC and ops servers
  // were built timed out while this process was still busy building them ("Command timed out" on
  // the first attempt of a clean npm start).
  redis.connect().catch(() => {});
  reached.start();
  const running = await returnStarted(
    {
      endpoints: { grpc: `${config.LIMITER_HOST}:${grpcPort}`, ...(opsUrl ? { ops: opsUrl } : {}) },
      registry,
      async stop() {
        rules.stop();
        reached.stop();
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        await ops?.close();
        redis.disconnect();
      },
    },
    reached.up,
    options,
  );
  return { ...running, checks };
}

const serviceName = "limiter.v1.LimiterService";

/**
 * Waits for ioredis's next connection attempt to end: resolves when it is ready, throws what it
 * failed with (or a TimeoutError after `timeoutMs`), so each start-up attempt reports its reason.
 */
function nextConnection(redis: Redis | Cluster, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: unknown) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("error", settle);
      if (error) reject(error);
      else resolve();
    };
    const onReady = () => settle();
    const timer = setTimeout(
      () =>
        settle(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { name: "TimeoutError" })),
      timeoutMs,
    );
    redis.on("ready", onReady);
    redis.on("error", settle);
  });
}

/** REDIS_URL's host and port, without its credentials. */
function redisAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.port ? `${parsed.hostname}:${parsed.port}` : parsed.hostname;
  } catch {
    return "redis";
  }
}

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

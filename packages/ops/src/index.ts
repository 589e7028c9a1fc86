import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { collectDefaultMetrics, Registry } from "prom-client";

export { Registry };

/** A metrics registry with Node's process metrics and the service name on every series. */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** A named dependency check for /readyz: resolves when the dependency answers, throws otherwise. */
export type ReadinessChecks = Record<string, () => Promise<unknown>>;

export interface OpsRoutesOptions {
  registry: Registry;
  checks: ReadinessChecks;
  /** A check slower than this counts as failed: a probe must answer before the kubelet gives up. */
  checkTimeoutMs?: number;
}

/**
 * GET /healthz (the process is alive: no dependency is consulted, so a Kafka outage does not get
 * every pod restarted), GET /readyz (every check passed: 200 `{"ready": true, "failing": []}`, else
 * 503 naming the checks that failed, `{"ready": false, "failing": ["mongodb"]}`) and GET /metrics
 * (Prometheus text). /readyz gives names only: a driver's error carries broker addresses and
 * hosts, and a probe is answered to whoever can reach the port; the services log why.
 */
export function registerOpsRoutes(app: FastifyInstance, options: OpsRoutesOptions): void {
  const timeoutMs = options.checkTimeoutMs ?? 2000;
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => {
    const results = await Promise.all(
      Object.entries(options.checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), timeoutMs);
          return undefined;
        } catch {
          return name;
        }
      }),
    );
    const failing = results.filter((name) => name !== undefined);
    return reply.code(failing.length === 0 ? 200 : 503).send({ ready: failing.length === 0, failing });
  });
  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", options.registry.contentType);
    return options.registry.metrics();
  });
}

export interface OpsServerOptions extends OpsRoutesOptions {
  /** Fastify's server options: a service's listener timeouts (httpListenerOptions of @taituri/config). */
  listener?: FastifyServerOptions;
}

/**
 * A bare server with only the ops routes: the whole HTTP surface of services whose real interface
 * is Kafka or gRPC, and a listener of its own beside a public one.
 */
export function createOpsServer(options: OpsServerOptions): FastifyInstance {
  const app = Fastify({ ...options.listener, logger: false });
  registerOpsRoutes(app, options);
  return app;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs `stop` once on SIGTERM or SIGINT (Kubernetes and Ctrl-C), then exits; a second signal exits
 * at once for an operator who does not want to wait.
 */
export function onShutdown(stop: () => Promise<void>, log: (message: string) => void = console.error): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log(`${signal} received, shutting down`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log(`shutdown failed: ${error instanceof Error ? error.stack : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

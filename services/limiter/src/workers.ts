import cluster, { type Worker } from "node:cluster";
import type { Logger } from "@taituri/logging";
import { createOpsServer, onShutdown } from "@taituri/ops";
import { AggregatorRegistry, type Registry } from "prom-client";
import type { LimiterConfig } from "./config.ts";

/** Whether the launch sizes the young generation itself, in Node's arguments or in NODE_OPTIONS. */
export function semiSpaceGiven(execArgv: string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].some((flag) =>
    /^--max[-_]semi[-_]space[-_]size(=|$)/.test(flag),
  );
}

/** The workers' Node flags: the primary's own, plus LIMITER_SEMI_SPACE_MB unless the launch sets one. */
export function workerExecArgv(
  execArgv: string[],
  nodeOptions: string | undefined,
  semiSpaceMb: number,
): string[] {
  return semiSpaceGiven(execArgv, nodeOptions)
    ? execArgv
    : [...execArgv, `--max-semi-space-size=${semiSpaceMb}`];
}

/** What a worker tells the primary once its gRPC server is bound. */
export const READY_MESSAGE = { taituriLimiter: "ready" } as const;

/**
 * The primary of LIMITER_WORKERS processes (node:cluster): forks the workers, which share the gRPC
 * port (connections are handed out round-robin), and serves the ops port itself: /metrics sums the
 * workers' registries (prom-client's AggregatorRegistry over IPC), /readyz is ready when every
 * worker is up and has said so. A worker that dies is replaced; SIGTERM stops them all.
 */
export async function runPrimary(config: LimiterConfig, logger: Logger): Promise<void> {
  cluster.setupPrimary({
    execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS, config.LIMITER_SEMI_SPACE_MB),
  });
  const ready = new Set<number>();
  let stopping = false;
  const fork = () => {
    const worker = cluster.fork();
    worker.on("message", (message: unknown) => {
      if ((message as typeof READY_MESSAGE)?.taituriLimiter === "ready") ready.add(worker.id);
    });
  };
  cluster.on("exit", (worker: Worker, code, signal) => {
    ready.delete(worker.id);
    if (stopping) return;
    logger.error({ worker: worker.id, code, signal }, "limiter worker died; starting another");
    fork();
  });
  for (let i = 0; i < config.LIMITER_WORKERS; i++) fork();

  const aggregator = new AggregatorRegistry();
  // The ops server reads `contentType` and `metrics()`; the sum over workers stands in for one registry.
  const summed = {
    contentType: aggregator.contentType,
    metrics: async () => (await aggregator.clusterMetrics()) as string,
  } as unknown as Registry;
  const ops = createOpsServer({
    registry: summed,
    checks: {
      workers: async () => {
        const alive = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead()).length;
        if (ready.size < config.LIMITER_WORKERS || alive < config.LIMITER_WORKERS)
          throw new Error(`${ready.size} of ${config.LIMITER_WORKERS} workers ready`);
      },
    },
  });
  const url = await ops.listen({ port: config.LIMITER_PORT, host: config.LIMITER_HOST });
  logger.info({ ops: url, workers: config.LIMITER_WORKERS }, "limiter primary ready");
  onShutdown(
    async () => {
      stopping = true;
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      await Promise.all(
        workers.map(
          (worker) =>
            new Promise<void>((resolve) => {
              if (worker.isDead()) return resolve();
              worker.once("exit", () => resolve());
              worker.process.kill("SIGTERM");
            }),
        ),
      );
      await ops.close();
    },
    (message) => logger.info(message),
  );
}

/** In a worker: lets the primary read this worker's metrics and know it is ready. */
export function reportToPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // prom-client starts answering the primary's metrics requests when an AggregatorRegistry is made.
  new AggregatorRegistry();
  process.send?.(READY_MESSAGE);
}

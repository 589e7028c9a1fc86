import cluster, { type Worker } from "node:cluster";
import type { Logger } from "@taituri/logging";
import { createOpsServer, onShutdown } from "@taituri/ops";
import { AggregatorRegistry, type Registry } from "prom-client";
import type { LimiterConfig } from "./config.ts";
import type { LimiterChecks } from "./service.ts";

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

/** The primary asks a worker to run one of its readiness checks... */
interface CheckRequest {
  taituriLimiter: "check";
  id: number;
  check: string;
}

/** ...and the worker answers, passed or not: the reason stays in the worker's log. */
interface CheckAnswer {
  taituriLimiter: "checked";
  id: number;
  passed: boolean;
}

/** The checks every worker runs for the primary's /readyz, under the names one process gives them. */
const WORKER_CHECKS = ["redis"] as const satisfies ReadonlyArray<keyof LimiterChecks>;

/**
 * How long the primary waits for a worker's answer: the ops server gives a check 2 s, so a worker
 * too busy to answer within that has already failed the probe.
 */
const CHECK_TIMEOUT_MS = 2000;

/**
 * The primary of LIMITER_WORKERS processes (node:cluster): forks the workers, which share the gRPC
 * port (connections are handed out round-robin), and serves the ops port itself: /metrics sums the
 * workers' registries (prom-client's AggregatorRegistry over IPC); /readyz is ready when every
 * worker is up and has said so (`workers`) and each one's own Redis connection passes its check,
 * run in the worker at each probe (`redis`, as one process names it). A worker that dies is
 * replaced; SIGTERM stops them all.
 */
export async function runPrimary(config: LimiterConfig, logger: Logger): Promise<void> {
  cluster.setupPrimary({
    execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS, config.LIMITER_SEMI_SPACE_MB),
  });
  const ready = new Set<number>();
  // Checks asked and not yet answered, by request id.
  const asked = new Map<number, { worker: number; settle: (passed: boolean) => void }>();
  let lastRequest = 0;
  let stopping = false;
  const fork = () => {
    const worker = cluster.fork();
    worker.on("message", (message: unknown) => {
      const kind = (message as { taituriLimiter?: unknown } | null)?.taituriLimiter;
      if (kind === READY_MESSAGE.taituriLimiter) ready.add(worker.id);
      else if (kind === "checked") {
        const answer = message as CheckAnswer;
        asked.get(answer.id)?.settle(answer.passed === true);
      }
    });
  };
  /** Runs `check` in one worker: false when it fails there, or when no answer comes. */
  const ask = (worker: Worker, check: string) =>
    new Promise<boolean>((resolve) => {
      const id = ++lastRequest;
      const settle = (passed: boolean) => {
        clearTimeout(timer);
        asked.delete(id);
        resolve(passed);
      };
      const timer = setTimeout(() => settle(false), CHECK_TIMEOUT_MS);
      asked.set(id, { worker: worker.id, settle });
      // With a callback, a channel closed by a dying worker fails this ask rather than throwing.
      worker.send({ taituriLimiter: "check", id, check } satisfies CheckRequest, undefined, (error) => {
        if (error) settle(false);
      });
    });
  cluster.on("exit", (worker: Worker, code, signal) => {
    ready.delete(worker.id);
    for (const request of asked.values()) if (request.worker === worker.id) request.settle(false);
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
      // Asked of the workers that are ready (one that is not cannot answer yet, and fails `workers`).
      ...Object.fromEntries(
        WORKER_CHECKS.map((check) => [
          check,
          async () => {
            const workers = Object.values(cluster.workers ?? {}).filter(
              (w): w is Worker => w !== undefined && !w.isDead() && ready.has(w.id),
            );
            const passed = await Promise.all(workers.map((worker) => ask(worker, check)));
            const failed = passed.filter((p) => !p).length;
            if (failed > 0) throw new Error(`${check} failing in ${failed} of ${workers.length} workers`);
          },
        ]),
      ),
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

/**
 * In a worker: lets the primary read this worker's metrics, run its readiness checks, and know it
 * is ready.
 */
export function reportToPrimary(registry: Registry, checks: LimiterChecks): void {
  AggregatorRegistry.setRegistries([registry]);
  // prom-client starts answering the primary's metrics requests when an AggregatorRegistry is made.
  new AggregatorRegistry();
  process.on("message", (message: unknown) => {
    const request = message as Partial<CheckRequest> | null;
    if (request?.taituriLimiter !== "check" || typeof request.id !== "number") return;
    const { id, check = "" } = request;
    const run = Object.hasOwn(checks, check) ? checks[check as keyof LimiterChecks] : undefined;
    void (run ? run() : Promise.reject(new Error(`no check ${check}`))).then(
      () => answer({ taituriLimiter: "checked", id, passed: true }),
      () => answer({ taituriLimiter: "checked", id, passed: false }),
    );
  });
  process.send?.(READY_MESSAGE);
}

/** An answer to the primary; with a callback, a primary gone meanwhile is not an uncaught error. */
function answer(message: CheckAnswer): void {
  process.send?.(message, undefined, undefined, () => {});
}

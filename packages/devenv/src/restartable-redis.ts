import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { resolveCacheDir } from "./cache.ts";
import { openLocalRun } from "./local.ts";
import { chooseMode } from "./mode.ts";
import { freePort, LOOPBACK } from "./ports.ts";
import { type ServerProcess, spawnServer, waitUntilReady } from "./process.ts";
import { provisionRedis, redisProbe } from "./redis.ts";
import type { LogFn, StartInfraOptions } from "./types.ts";
import { defaultLog, seconds, timed } from "./util.ts";

export interface RestartableRedis {
  /** Stays the same across stop() and start(): ioredis reconnects to it by itself. */
  url: string;
  /** Takes redis-server away at once (no grace), as a lost node; resolves once it is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted); resolves once it answers PING. */
  start(): Promise<void>;
  isRunning(): boolean;
  /** Stops it if needed and removes its run folder. Idempotent. */
  close(): Promise<void>;
}

/**
 * A Redis of this caller's own, to take away and bring back: for outage tests and the chaos suite.
 * REDIS_URL is ignored on purpose (someone else's server cannot be stopped). Local processes only,
 * as startRestartableMongo. Nothing is persisted, so a restart loses every key, as a failed-over
 * cache without replication would: what the limiter must survive.
 */
export async function startRestartableRedis(
  opts: Omit<StartInfraOptions, "persist"> = {},
): Promise<RestartableRedis> {
  const env = opts.env ?? process.env;
  const log: LogFn = opts.log ?? defaultLog;
  const chosen = await chooseMode(opts.mode ?? env.TAITURI_INFRA_MODE ?? "auto", log);
  if (chosen.mode === "docker")
    throw new Error("a restartable Redis is made of local processes only: set TAITURI_INFRA_MODE=local");
  const cacheDir = resolveCacheDir(opts.cacheDir, env);
  const install = await timed(log, "redis: provisioning", () => provisionRedis({ cacheDir, log }));
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const { ctx, cleanup } = await openLocalRun({
    cacheDir,
    log,
    persist: false,
    readyTimeoutMs,
    label: "restartable-redis",
  });
  const dataDir = join(ctx.runDir, "redis-data");
  await mkdir(dataDir, { recursive: true });
  const port = await freePort();
  const url = `redis://${LOOPBACK}:${port}`;
  const launch = async (): Promise<ServerProcess> => {
    const server = spawnServer({
      name: "redis",
      command: install.binary,
      args: [
        ...["--port", String(port), "--bind", LOOPBACK, "--daemonize", "no", "--dir", dataDir],
        ...["--logfile", "", "--save", "", "--appendonly", "no"],
      ],
      cwd: dataDir,
      logFile: join(ctx.logDir, "redis.log"),
      log,
    });
    try {
      await waitUntilReady({ server, timeoutMs: readyTimeoutMs, probe: () => redisProbe(url, server.pid) });
    } catch (err) {
      await server.stop(5_000);
      throw err;
    }
    return server;
  };
  let server: ServerProcess;
  try {
    server = await launch();
  } catch (err) {
    await cleanup();
    throw err;
  }
  const step = async (what: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    log(`redis: ${what} in ${seconds(performance.now() - t0)}`);
  };
  let closing: Promise<void> | undefined;
  return {
    url,
    // No grace: SIGKILL follows SIGTERM at once, a lost node rather than an orderly shutdown.
    stop: () => step("killed", () => server.stop(0)),
    start: async () => {
      if (closing) throw new Error("start() after close(): this Redis is gone");
      if (!server.hasExited()) return;
      await step(`started again on ${url}`, async () => {
        server = await launch();
      });
    },
    isRunning: () => !server.hasExited(),
    close: () => {
      closing ??= (async () => {
        await server.stop(5_000);
        await cleanup();
      })();
      return closing;
    },
  };
}

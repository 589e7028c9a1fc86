import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { LocalContext } from "./local.ts";
import { choosePort, DEFAULT_PORTS, LOOPBACK } from "./ports.ts";
import { ForeignServerError, retryOnPortClash, spawnServer, waitUntilReady } from "./process.ts";
import { ensureSystemBinary } from "./system.ts";
import type { LogFn, StartedService } from "./types.ts";
import { timed } from "./util.ts";

export interface RedisInstall {
  binary: string;
}

export async function provisionRedis(ctx: { cacheDir: string; log: LogFn }): Promise<RedisInstall> {
  const binary = await ensureSystemBinary({
    binary: "redis-server",
    aptPackage: "redis-server",
    cacheDir: ctx.cacheDir,
    log: ctx.log,
  });
  return { binary };
}

export async function startLocalRedis(ctx: LocalContext, install: RedisInstall): Promise<StartedService> {
  const dataDir = ctx.persist ? join(ctx.cacheDir, "data", "redis") : join(ctx.runDir, "redis-data");
  await mkdir(dataDir, { recursive: true });
  const logFile = join(ctx.logDir, "redis.log");

  return retryOnPortClash("redis", ctx.log, async (attempt) => {
    const port = await choosePort(DEFAULT_PORTS.redis, new Set(attempt > 1 ? [DEFAULT_PORTS.redis] : []));
    // Our own process, not Debian's service: no config file, nothing written outside dataDir.
    const persistence = ctx.persist ? ["--appendonly", "yes"] : ["--save", "", "--appendonly", "no"];
    const server = spawnServer({
      name: "redis",
      command: install.binary,
      args: [
        "--port",
        String(port),
        "--bind",
        LOOPBACK,
        "--daemonize",
        "no",
        "--dir",
        dataDir,
        "--logfile",
        "",
        ...persistence,
      ],
      cwd: dataDir,
      logFile,
      log: ctx.log,
    });
    const url = `redis://${LOOPBACK}:${port}`;
    try {
      await timed(ctx.log, `redis: waiting for redis-server on ${LOOPBACK}:${port} (pid ${server.pid})`, () =>
        waitUntilReady({ server, timeoutMs: ctx.readyTimeoutMs, probe: () => redisProbe(url, server.pid) }),
      );
    } catch (err) {
      await server.stop(5_000);
      throw err;
    }
    return { name: "redis", endpoint: url, stop: () => server.stop(10_000) };
  });
}

/** PING, plus a check that INFO's process_id is the server we started. */
export async function redisProbe(url: string, expectedPid?: number): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // ioredis emits 'error' events besides rejecting; without a listener they become uncaught noise.
  client.on("error", () => {});
  try {
    await client.connect();
    const pong = await client.ping();
    if (pong !== "PONG") throw new Error(`unexpected PING reply ${pong}`);
    if (expectedPid !== undefined) {
      const info = await client.info("server");
      const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
      if (Number.isFinite(pid) && pid !== expectedPid) {
        throw new ForeignServerError(
          `another redis (pid ${pid}) answers on ${url}, not ours (pid ${expectedPid})`,
        );
      }
    }
  } finally {
    client.disconnect();
  }
}

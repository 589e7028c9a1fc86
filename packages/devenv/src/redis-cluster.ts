import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { resolveCacheDir } from "./cache.ts";
import { openLocalRun } from "./local.ts";
import { freePort, LOOPBACK } from "./ports.ts";
import { retryOnPortClash, type ServerProcess, spawnServer, waitUntilReady } from "./process.ts";
import { provisionRedis, redisProbe } from "./redis.ts";
import { ensureSystemBinary } from "./system.ts";
import type { LogFn } from "./types.ts";
import { defaultLog, run, sleep, timed } from "./util.ts";

export interface RedisCluster {
  /** `host:port` of every master, for a cluster client's seed list. */
  nodes: string[];
  /** Stops every node and removes their data; idempotent. */
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** Masters (no replicas); 3 is the smallest cluster redis-cli agrees to create. */
  masters?: number;
  log?: LogFn;
  cacheDir?: string;
  env?: Record<string, string | undefined>;
  readyTimeoutMs?: number;
}

/**
 * A real Redis Cluster of local `redis-server` processes (Debian's redis-server and redis-tools,
 * installed when missing): each node with cluster mode on and its own data folder, joined by
 * `redis-cli --cluster create`, resolved once every node reports cluster_state:ok and all 16384
 * slots. Always local processes, whatever REDIS_URL or Docker say: it is this test's own cluster.
 */
export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const masters = opts.masters ?? 3;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  const cacheDir = resolveCacheDir(opts.cacheDir, env);
  const { binary } = await provisionRedis({ cacheDir, log });
  const cli = await ensureSystemBinary({ binary: "redis-cli", aptPackage: "redis-tools", cacheDir, log });
  const { ctx, cleanup } = await openLocalRun({
    cacheDir,
    log,
    persist: false,
    readyTimeoutMs,
    label: "redis-cluster",
  });
  const servers: ServerProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await Promise.all(servers.map((server) => server.stop(10_000)));
      await cleanup();
    })();
    return stopping;
  };
  try {
    const nodes: string[] = [];
    for (let index = 0; index < masters; index++) {
      nodes.push(await startNode(ctx.runDir, ctx.logDir, binary, index, log, readyTimeoutMs, servers));
    }
    await timed(log, `redis-cluster: joining ${nodes.join(" ")}`, () =>
      run(cli, ["--cluster", "create", ...nodes, "--cluster-replicas", "0", "--cluster-yes"], {
        timeoutMs: readyTimeoutMs,
      }),
    );
    await timed(log, "redis-cluster: waiting for cluster_state:ok on every node", () =>
      waitForClusterOk(nodes, masters, readyTimeoutMs),
    );
    return { nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function startNode(
  runDir: string,
  logDir: string,
  binary: string,
  index: number,
  log: LogFn,
  readyTimeoutMs: number,
  servers: ServerProcess[],
): Promise<string> {
  const dataDir = join(runDir, `redis-cluster-${index}`);
  await mkdir(dataDir, { recursive: true });
  return retryOnPortClash(`redis-cluster-${index}`, log, async () => {
    const port = await freePort();
    // The cluster bus gets a port of its own (Redis ≥ 7); the default, port + 10000, may not exist.
    let busPort = await freePort();
    while (busPort === port) busPort = await freePort();
    const server = spawnServer({
      name: `redis-cluster-${index}`,
      command: binary,
      args: [
        "--port",
        String(port),
        "--cluster-port",
        String(busPort),
        "--bind",
        LOOPBACK,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dataDir, `nodes-${port}.conf`),
        "--cluster-node-timeout",
        "5000",
        "--daemonize",
        "no",
        "--dir",
        dataDir,
        "--logfile",
        "",
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      cwd: dataDir,
      logFile: join(logDir, `redis-cluster-${index}.log`),
      log,
    });
    servers.push(server);
    const url = `redis://${LOOPBACK}:${port}`;
    await waitUntilReady({ server, timeoutMs: readyTimeoutMs, probe: () => redisProbe(url, server.pid) });
    return `${LOOPBACK}:${port}`;
  });
}

async function waitForClusterOk(nodes: string[], masters: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const infos = await Promise.all(nodes.map((node) => clusterInfo(node).catch((error) => String(error))));
    const ok = infos.every(
      (info) =>
        /cluster_state:ok/.test(info) &&
        /cluster_slots_ok:16384/.test(info) &&
        new RegExp(`cluster_known_nodes:${masters}\\b`).test(info),
    );
    if (ok) return;
    last = infos.join("\n---\n");
    if (Date.now() > deadline) throw new Error(`redis cluster not ok within ${timeoutMs} ms:\n${last}`);
    await sleep(100);
  }
}

async function clusterInfo(node: string): Promise<string> {
  const client = new Redis(`redis://${node}`, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return String(await client.call("CLUSTER", "INFO"));
  } finally {
    client.disconnect();
  }
}

import { mkdir } from "node:fs/promises";
import { resolveCacheDir } from "./cache.ts";
import { type KafkaInstall, provisionKafka, startLocalKafka } from "./kafka.ts";
import { openLocalRun } from "./local.ts";
import { chooseMode } from "./mode.ts";
import { type MongoInstall, provisionMongo, startLocalMongo } from "./mongo.ts";
import { provisionRedis, type RedisInstall, startLocalRedis } from "./redis.ts";
import type { Infra, InfraMode, LogFn, ServiceName, StartedService, StartInfraOptions } from "./types.ts";
import { defaultLog, seconds, timed } from "./util.ts";

export { KAFKA_VERSION } from "./kafka.ts";
export { FERRETDB_VERSION } from "./mongo.ts";
export { DEFAULT_PORTS } from "./ports.ts";
export {
  type RestartableKafka,
  type RestartableKafkaOptions,
  startRestartableKafka,
} from "./restartable-kafka.ts";
export type { Infra, InfraMode, LogFn, StartInfraOptions } from "./types.ts";

const SERVICES: readonly ServiceName[] = ["kafka", "mongo", "redis"];
const ENV_VARS: Record<ServiceName, string> = {
  kafka: "KAFKA_BROKERS",
  mongo: "MONGO_URL",
  redis: "REDIS_URL",
};

/**
 * Gives tests and `npm start` a Kafka, a MongoDB-wire server and a Redis, in this order of preference:
 * servers named by KAFKA_BROKERS / MONGO_URL / REDIS_URL; containers when a Docker runtime is
 * reachable; otherwise local processes provisioned into the cache dir.
 */
export async function startInfra(opts: StartInfraOptions = {}): Promise<Infra> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const t0 = performance.now();

  const endpoints: Partial<Record<ServiceName, string>> = {};
  for (const s of SERVICES) {
    const value = env[ENV_VARS[s]]?.trim();
    if (value) {
      endpoints[s] = value;
      log(`${s}: using ${ENV_VARS[s]}=${value} from the environment`);
    }
  }
  const missing = SERVICES.filter((s) => !endpoints[s]);
  if (missing.length === 0) return makeInfra("env", endpoints, [], async () => {}, log);

  const chosen = await chooseMode(opts.mode ?? env.TAITURI_INFRA_MODE ?? "auto", log);
  const mode = chosen.mode;

  let started: StartedService[];
  let cleanup: () => Promise<void> = async () => {};
  if (chosen.mode === "docker") {
    const docker = await import("./docker.ts");
    started = await docker.startDockerServices({
      host: chosen.dockerHost,
      services: missing,
      log,
      readyTimeoutMs,
    });
  } else {
    ({ started, cleanup } = await startLocal(missing, {
      cacheDir: resolveCacheDir(opts.cacheDir, env),
      log,
      persist: opts.persist ?? false,
      readyTimeoutMs,
    }));
  }
  for (const s of started) endpoints[s.name] = s.endpoint;
  log(`infra ready in ${seconds(performance.now() - t0)} (${mode})`);
  return makeInfra(mode, endpoints, started, cleanup, log);
}

function makeInfra(
  mode: InfraMode,
  endpoints: Partial<Record<ServiceName, string>>,
  started: StartedService[],
  cleanup: () => Promise<void>,
  log: LogFn,
): Infra {
  const need = (s: ServiceName): string => {
    const v = endpoints[s];
    if (!v) throw new Error(`internal: no endpoint for ${s}`);
    return v;
  };
  let stopping: Promise<void> | undefined;
  return {
    kafka: {
      brokers: need("kafka")
        .split(",")
        .map((b) => b.trim())
        .filter(Boolean),
    },
    mongo: { url: need("mongo") },
    redis: { url: need("redis") },
    mode,
    stop: () => {
      stopping ??= (async () => {
        if (started.length === 0) return;
        const t0 = performance.now();
        const results = await Promise.allSettled(started.map((s) => s.stop()));
        await cleanup();
        log(`infra stopped in ${seconds(performance.now() - t0)}`);
        const failure = results.find((r) => r.status === "rejected");
        if (failure) throw failure.reason;
      })();
      return stopping;
    },
  };
}

interface Installs {
  kafka?: KafkaInstall;
  mongo?: MongoInstall;
  redis?: RedisInstall;
}

async function provision(services: readonly ServiceName[], cacheDir: string, log: LogFn): Promise<Installs> {
  await mkdir(cacheDir, { recursive: true });
  const ctx = { cacheDir, log };
  const installs: Installs = {};
  // In parallel: the Maven download, the Go build and apt-get mostly wait on different things.
  await Promise.all(
    services.map(async (s) => {
      if (s === "kafka") installs.kafka = await timed(log, "kafka: provisioning", () => provisionKafka(ctx));
      if (s === "mongo") installs.mongo = await timed(log, "mongo: provisioning", () => provisionMongo(ctx));
      if (s === "redis") installs.redis = await timed(log, "redis: provisioning", () => provisionRedis(ctx));
    }),
  );
  return installs;
}

/** Downloads/builds everything local mode needs, without starting anything. Idempotent. */
export async function provisionInfra(
  opts: { log?: LogFn; cacheDir?: string; env?: Record<string, string | undefined> } = {},
): Promise<{
  cacheDir: string;
  kafka: KafkaInstall;
  mongo: MongoInstall;
  redis: RedisInstall;
}> {
  const log = opts.log ?? defaultLog;
  const cacheDir = resolveCacheDir(opts.cacheDir, opts.env ?? process.env);
  const installs = await timed(log, `provisioning into ${cacheDir}`, () =>
    provision(SERVICES, cacheDir, log),
  );
  if (!installs.kafka || !installs.mongo || !installs.redis)
    throw new Error("internal: provisioning incomplete");
  return { cacheDir, kafka: installs.kafka, mongo: installs.mongo, redis: installs.redis };
}

async function startLocal(
  services: ServiceName[],
  opts: { cacheDir: string; log: LogFn; persist: boolean; readyTimeoutMs: number },
): Promise<{ started: StartedService[]; cleanup: () => Promise<void> }> {
  const installs = await provision(services, opts.cacheDir, opts.log);
  const { ctx, cleanup } = await openLocalRun(opts);

  const starters: Record<ServiceName, () => Promise<StartedService>> = {
    kafka: () => startLocalKafka(ctx, must(installs.kafka)),
    mongo: () => startLocalMongo(ctx, must(installs.mongo)),
    redis: () => startLocalRedis(ctx, must(installs.redis)),
  };
  const results = await Promise.allSettled(services.map((s) => starters[s]()));
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failure = results.find((r) => r.status === "rejected");
  if (failure) {
    await Promise.allSettled(started.map((s) => s.stop()));
    await cleanup();
    throw failure.reason;
  }
  return { started, cleanup };
}

function must<T>(v: T | undefined): T {
  if (v === undefined) throw new Error("internal: service was not provisioned");
  return v;
}

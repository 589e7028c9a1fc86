import { resolveCacheDir } from "./cache.ts";
import { openLocalRun } from "./local.ts";
import { chooseMode } from "./mode.ts";
import { provisionMongo, startLocalMongoServers } from "./mongo.ts";
import type { LogFn, StartInfraOptions } from "./types.ts";
import { defaultLog, seconds, timed } from "./util.ts";

/** Which part of the MongoDB-wire server an outage takes away. */
export type MongoOutage =
  /** mongod or FerretDB itself: connections are refused. */
  | "server"
  /** FerretDB's PostgreSQL (FerretDB only): the wire server answers, every command fails. */
  | "storage";

export interface RestartableMongo {
  /** Stays the same across stop() and start(): the driver reconnects to it by itself. */
  url: string;
  kind: "mongod" | "ferretdb";
  /** Stops the part named (an orderly shutdown) and keeps the data. Resolves once it is gone. */
  stop(part: MongoOutage): Promise<void>;
  /** Starts whatever is stopped again on the same ports and data; resolves once it is ready. */
  start(): Promise<void>;
  isRunning(): boolean;
  /** Stops everything and removes the data. Idempotent. */
  close(): Promise<void>;
}

/**
 * A MongoDB-wire server of this test's own, to take away and bring back: for outage tests.
 * MONGO_URL is ignored on purpose (someone else's server cannot be stopped). Local processes only:
 * a container's restart would need its port mapping kept, which the Kafka one does and this does
 * not yet.
 */
export async function startRestartableMongo(
  opts: Omit<StartInfraOptions, "persist"> = {},
): Promise<RestartableMongo> {
  const env = opts.env ?? process.env;
  const log: LogFn = opts.log ?? defaultLog;
  const chosen = await chooseMode(opts.mode ?? env.TAITURI_INFRA_MODE ?? "auto", log);
  if (chosen.mode === "docker")
    throw new Error(
      "a restartable MongoDB-wire server is made of local processes only: set TAITURI_INFRA_MODE=local",
    );
  const cacheDir = resolveCacheDir(opts.cacheDir, env);
  const install = await timed(log, "mongo: provisioning", () => provisionMongo({ cacheDir, log }));
  const { ctx, cleanup } = await openLocalRun({
    cacheDir,
    log,
    persist: false,
    readyTimeoutMs: opts.readyTimeoutMs ?? 120_000,
    label: "restartable-mongo",
  });
  let mongo: Awaited<ReturnType<typeof startLocalMongoServers>>;
  try {
    mongo = await startLocalMongoServers(ctx, install);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const step = async (what: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    log(`mongo: ${what} in ${seconds(performance.now() - t0)}`);
  };
  let closing: Promise<void> | undefined;
  return {
    url: mongo.url,
    kind: install.kind,
    stop: (part) => {
      if (part === "server") return step(`${install.kind} stopped (data kept)`, mongo.server.halt);
      const postgres = mongo.postgres;
      if (!postgres) throw new Error("a storage outage needs FerretDB's PostgreSQL; this is a mongod");
      return step("PostgreSQL stopped under FerretDB (data kept)", postgres.halt);
    },
    start: async () => {
      if (closing) throw new Error("start() after close(): this MongoDB-wire server is gone");
      // Storage first: FerretDB answers its probe only with PostgreSQL there.
      if (mongo.postgres && !mongo.postgres.isRunning())
        await step("PostgreSQL started again", mongo.postgres.resume);
      if (!mongo.server.isRunning()) await step(`${install.kind} started again`, mongo.server.resume);
    },
    isRunning: () => mongo.server.isRunning() && (mongo.postgres?.isRunning() ?? true),
    close: () => {
      closing ??= (async () => {
        await mongo.stop();
        await cleanup();
      })();
      return closing;
    },
  };
}

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chown, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import type { LocalContext } from "./local.ts";
import { choosePort, DEFAULT_PORTS, LOOPBACK } from "./ports.ts";
import { retryOnPortClash, spawnServer, waitUntilReady } from "./process.ts";
import { ensureSystemBinary } from "./system.ts";
import type { LogFn } from "./types.ts";
import { isRoot, run, timed } from "./util.ts";

/**
 * PostgreSQL is FerretDB's storage here. FerretDB's SQLite backend was measured unable to serve
 * concurrent writers: every write takes the one database-file lock, and waiters sleep in SQLite's
 * busy handler (1, 2, 5 … 100 ms), so three consumers writing at once turned 1 ms operations into
 * 100 ms ones and a 50 messages/s load into seconds of queueing (docs/infrastructure.md).
 */
export interface PostgresInstall {
  /** The folder with `postgres`, `initdb` and `pg_isready`. */
  binDir: string;
  version: string;
}

/** Debian keeps server binaries off PATH, in /usr/lib/postgresql/<major>/bin; newest first. */
function debianBinDirs(): string[] {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, "bin"))
    .filter((dir) => existsSync(join(dir, "postgres")) && existsSync(join(dir, "initdb")));
}

export async function provisionPostgres(ctx: { cacheDir: string; log: LogFn }): Promise<PostgresInstall> {
  let dirs = debianBinDirs();
  if (dirs.length === 0) {
    // The `postgresql` package pulls in the distribution's current major version.
    await ensureSystemBinary({
      binary: "initdb",
      aptPackage: "postgresql",
      cacheDir: ctx.cacheDir,
      log: ctx.log,
      extraDirs: ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"],
    });
    dirs = debianBinDirs();
  }
  const binDir = dirs[0];
  if (!binDir)
    throw new Error("PostgreSQL installed but no /usr/lib/postgresql/<version>/bin/postgres found");
  const { stdout } = await run(join(binDir, "postgres"), ["--version"]);
  const version = /\d+(\.\d+)+/.exec(stdout)?.[0] ?? "unknown";
  ctx.log(`postgres: using PostgreSQL ${version} from ${binDir}`);
  return { binDir, version };
}

/** PostgreSQL refuses to run as root: then it runs as the `postgres` user the Debian package creates. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(
      "running as root and there is no `postgres` user to run PostgreSQL as (apt-get install postgresql creates it)",
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * FerretDB 1.24 pushes every equality down as `_jsonb->'<key>' @> <value>`, `_id` included, and
 * the unique `_id` index it creates is a btree on `(_jsonb->'_id')`, which cannot serve `@>`: every
 * find by `_id` read the whole table (5.9 ms per conversation load with ~2,500 conversations, 7.4 s
 * of PostgreSQL's time in 14 s at 100 messages/s, from pg_stat_statements). A GIN index on the
 * same expression serves it (0.09 ms), with custom plans (the server's plan_cache_mode) and without
 * GIN's pending list, which every lookup would otherwise scan until a vacuum merges it. An event
 * trigger adds one to every table FerretDB creates, and the block indexes tables a persisted data
 * dir already has. Below the MongoDB wire, so the services see nothing of it; on real MongoDB
 * `_id` is indexed as it should be.
 */
const ID_INDEXES_SQL = `
CREATE OR REPLACE FUNCTION taituri_index_id(target regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = '_jsonb' AND NOT attisdropped) THEN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb->''_id'')) WITH (fastupdate = off)',
                   'taituri_id_gin_' || target::oid, target);
  END IF;
END $$;
CREATE OR REPLACE FUNCTION taituri_index_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE created record;
BEGIN
  FOR created IN SELECT objid FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
    PERFORM taituri_index_id(created.objid::regclass);
  END LOOP;
END $$;
DROP EVENT TRIGGER IF EXISTS taituri_index_new_tables;
CREATE EVENT TRIGGER taituri_index_new_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION taituri_index_new_tables();
SELECT taituri_index_id(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema');
`;

export interface StartedPostgres {
  /** `postgres://taituri@127.0.0.1:<port>/postgres` (trust authentication, loopback only). */
  url: string;
  /** Stops the server and, as root outside a persistent run, removes its data folder. */
  stop(): Promise<void>;
  /** Stops the server and keeps its data, for an outage test; resolves once it is gone. */
  halt(): Promise<void>;
  /** Launches it again on the same port and data (no-op while it runs); resolves once it is ready. */
  resume(): Promise<void>;
  isRunning(): boolean;
}

export async function startLocalPostgres(
  ctx: LocalContext,
  install: PostgresInstall,
): Promise<StartedPostgres> {
  const user = serverUser();
  // As root, the data folder cannot sit under /root (mode 700: the postgres user could not reach it).
  const dataDir = user
    ? ctx.persist
      ? "/var/tmp/taituri/postgres-data"
      : join(tmpdir(), `taituri-postgres-${basename(ctx.runDir)}`)
    : ctx.persist
      ? join(ctx.cacheDir, "data", "postgres")
      : join(ctx.runDir, "postgres-data");
  // Parents must stay enterable by the server's user: only the data folder itself is private.
  await mkdir(dirname(dataDir), { recursive: true, mode: 0o755 });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (user) await chown(dataDir, user.uid, user.gid);
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    await timed(ctx.log, "postgres: initdb", () =>
      run(
        join(install.binDir, "initdb"),
        ["-D", dataDir, "-U", "taituri", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        { user, cwd: dataDir },
      ),
    );
  }
  const logFile = join(ctx.logDir, "postgres.log");
  const launch = async (port: number) => {
    const server = spawnServer({
      name: "postgres",
      command: join(install.binDir, "postgres"),
      args: [
        "-D",
        dataDir,
        "-p",
        String(port),
        "-c",
        `listen_addresses=${LOOPBACK}`,
        // TCP only: no socket file in a folder we may not own.
        "-c",
        "unix_socket_directories=",
        // FerretDB keeps a pool per client connection; several services and test files add up.
        "-c",
        "max_connections=300",
        // FerretDB's statements are prepared with the field name as a parameter (`_jsonb->$1`), so
        // a generic plan cannot use the `_id` index below (ID_INDEXES_SQL); with no statistics on a
        // young table PostgreSQL chose the generic plan after five runs. Custom plans: 5 ms → 0.09.
        "-c",
        "plan_cache_mode=force_custom_plan",
      ],
      cwd: dataDir,
      logFile,
      log: ctx.log,
      ...(user ? { user } : {}),
      // SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client; SIGINT is "fast".
      stopSignal: "SIGINT",
    });
    try {
      await timed(
        ctx.log,
        `postgres: waiting for PostgreSQL on ${LOOPBACK}:${port} (pid ${server.pid})`,
        () =>
          waitUntilReady({
            server,
            timeoutMs: ctx.readyTimeoutMs,
            probe: async () => {
              await run(join(install.binDir, "pg_isready"), [
                "-h",
                LOOPBACK,
                "-p",
                String(port),
                "-U",
                "taituri",
              ]);
            },
          }),
      );
    } catch (err) {
      await server.stop(5_000);
      throw err;
    }
    return server;
  };
  const started = await retryOnPortClash("postgres", ctx.log, async (attempt) => {
    const port = await choosePort(
      DEFAULT_PORTS.postgres,
      new Set(attempt > 1 ? [DEFAULT_PORTS.postgres] : []),
    );
    return { server: await launch(port), port };
  });
  await timed(ctx.log, "postgres: indexing FerretDB's _id lookups", () =>
    run(join(install.binDir, "psql"), [
      "-X",
      "-q",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      LOOPBACK,
      "-p",
      String(started.port),
      "-U",
      "taituri",
      "-d",
      "postgres",
      "-c",
      ID_INDEXES_SQL,
    ]),
  );
  let server = started.server;
  return {
    url: `postgres://taituri@${LOOPBACK}:${started.port}/postgres`,
    async stop() {
      await server.stop(15_000);
      if (user && !ctx.persist) await rm(dataDir, { recursive: true, force: true });
    },
    halt: () => server.stop(15_000),
    async resume() {
      // Later launches keep the first one's port: FerretDB's pool reconnects to the URL it was given.
      if (server.hasExited()) server = await launch(started.port);
    },
    isRunning: () => !server.hasExited(),
  };
}

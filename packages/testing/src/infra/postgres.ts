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

export interface StartedPostgres {
  /** `postgres://taituri@127.0.0.1:<port>/postgres` (trust authentication, loopback only). */
  url: string;
  stop(): Promise<void>;
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
  const started = await retryOnPortClash("postgres", ctx.log, async (attempt) => {
    const port = await choosePort(
      DEFAULT_PORTS.postgres,
      new Set(attempt > 1 ? [DEFAULT_PORTS.postgres] : []),
    );
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
    return { server, port };
  });
  return {
    url: `postgres://taituri@${LOOPBACK}:${started.port}/postgres`,
    async stop() {
      await started.server.stop(15_000);
      if (user && !ctx.persist) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

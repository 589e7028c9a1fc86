import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { LogFn } from "./types.ts";
import { isProcessAlive, sleep } from "./util.ts";

export function resolveCacheDir(
  cacheDir: string | undefined,
  env: Record<string, string | undefined>,
): string {
  return cacheDir ?? env.TAITURI_CACHE_DIR ?? join(homedir(), ".cache", "taituri");
}

interface LockOwner {
  pid: number;
  since: string;
}

/**
 * Cross-process mutex: `mkdir` is atomic, so whoever creates the directory owns the lock.
 * A lock whose owner died (crash, SIGKILL) is taken over instead of blocking forever.
 * Returns the release function. With `timeoutMs: 0` it fails at once if the lock is held.
 */
export async function acquireLock(
  lockDir: string,
  opts: { log?: LogFn; timeoutMs?: number; what?: string } = {},
): Promise<() => Promise<void>> {
  const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      await mkdir(lockDir, { recursive: false });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        await mkdir(join(lockDir, ".."), { recursive: true });
        continue;
      }
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = await readOwner(lockDir);
    if (await isStale(lockDir, owner)) {
      // Renaming first means only one of several waiters wins the takeover.
      const grave = `${lockDir}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
      try {
        await rename(lockDir, grave);
        await rm(grave, { recursive: true, force: true });
        opts.log?.(`${opts.what ?? "lock"}: removed stale lock of dead process ${owner?.pid ?? "?"}`);
      } catch {
        // somebody else took it over first
      }
      continue;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `${opts.what ?? "lock"}: ${lockDir} is held by pid ${owner?.pid ?? "?"}` +
          (timeoutMs > 0 ? ` (waited ${Math.round(timeoutMs / 1000)}s)` : ""),
      );
    }
    if (!announced) {
      opts.log?.(`${opts.what ?? "lock"}: waiting for pid ${owner?.pid ?? "?"} to finish`);
      announced = true;
    }
    await sleep(250);
  }
  await writeFile(
    join(lockDir, "owner.json"),
    JSON.stringify({ pid: process.pid, since: new Date().toISOString() } satisfies LockOwner),
  );
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await rm(lockDir, { recursive: true, force: true });
  };
}

export async function withLock<T>(
  lockDir: string,
  fn: () => Promise<T>,
  opts: { log?: LogFn; timeoutMs?: number; what?: string } = {},
): Promise<T> {
  const release = await acquireLock(lockDir, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}

async function readOwner(lockDir: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(join(lockDir, "owner.json"), "utf8")) as LockOwner;
  } catch {
    return undefined;
  }
}

async function isStale(lockDir: string, owner: LockOwner | undefined): Promise<boolean> {
  if (owner) return !isProcessAlive(owner.pid);
  // Between mkdir and writing owner.json there is no owner yet; only a long-ownerless lock is abandoned.
  try {
    const st = await stat(lockDir);
    return Date.now() - st.mtimeMs > 60_000;
  } catch {
    return false;
  }
}

/**
 * Installs something into `dir` exactly once per `version`, even with concurrent callers:
 * the build happens in a scratch folder under a lock, and a marker file written last
 * (then an atomic rename) means a half-built folder is never mistaken for a finished one.
 */
export async function ensureInstalled(opts: {
  dir: string;
  version: string;
  log: LogFn;
  what: string;
  build: (scratchDir: string) => Promise<void>;
}): Promise<{ dir: string; built: boolean }> {
  const marker = join(opts.dir, ".installed");
  if (await markerMatches(marker, opts.version)) return { dir: opts.dir, built: false };
  return withLock(
    `${opts.dir}.lock`,
    async () => {
      if (await markerMatches(marker, opts.version)) return { dir: opts.dir, built: false };
      const scratch = `${opts.dir}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
      await rm(scratch, { recursive: true, force: true });
      await mkdir(scratch, { recursive: true });
      try {
        await opts.build(scratch);
        await writeFile(join(scratch, ".installed"), opts.version);
        await rm(opts.dir, { recursive: true, force: true });
        await rename(scratch, opts.dir);
      } catch (err) {
        await rm(scratch, { recursive: true, force: true });
        throw err;
      }
      return { dir: opts.dir, built: true };
    },
    { log: opts.log, what: opts.what },
  );
}

async function markerMatches(marker: string, version: string): Promise<boolean> {
  try {
    return (await readFile(marker, "utf8")).trim() === version;
  } catch {
    return false;
  }
}

/** Per-run folder holding data dirs; the pid file lets a later run clean up after a killed one. */
export async function createRunDir(cacheDir: string, label?: string): Promise<{ id: string; dir: string }> {
  const id = `${new Date().toISOString().replace(/[:.]/g, "-")}-${process.pid}${label ? `-${label}` : ""}`;
  const dir = join(cacheDir, "runs", id);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "owner.pid"), String(process.pid));
  return { id, dir };
}

/** Removes run folders whose owning process is gone, and log folders beyond the newest few. */
export async function pruneStale(cacheDir: string, log: LogFn): Promise<void> {
  const runsDir = join(cacheDir, "runs");
  let removed = 0;
  for (const name of await readdir(runsDir).catch(() => [] as string[])) {
    const dir = join(runsDir, name);
    const pidText = await readFile(join(dir, "owner.pid"), "utf8").catch(() => undefined);
    if (pidText === undefined) {
      // A pidless folder may be one being created right now; leave young ones alone.
      const st = await stat(dir).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs < 60_000) continue;
    } else {
      const pid = Number(pidText);
      if (pid === process.pid || isProcessAlive(pid)) continue;
    }
    await rm(dir, { recursive: true, force: true });
    removed++;
  }
  if (removed > 0) log(`removed ${removed} data folder(s) left by dead runs`);

  const logsDir = join(cacheDir, "logs");
  const runLogs = (await readdir(logsDir, { withFileTypes: true }).catch(() => []))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const keep = 20;
  for (const name of runLogs.slice(0, Math.max(0, runLogs.length - keep))) {
    await rm(join(logsDir, name), { recursive: true, force: true });
  }
}

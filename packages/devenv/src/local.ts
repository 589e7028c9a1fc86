import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { acquireLock, createRunDir, pruneStale } from "./cache.ts";
import type { LogFn } from "./types.ts";

/** Everything a local server starter needs to know about this run. */
export interface LocalContext {
  cacheDir: string;
  /** Fresh per start; data and generated config live here. */
  runDir: string;
  /** `<cache>/logs/<run-id>/`. */
  logDir: string;
  log: LogFn;
  persist: boolean;
  readyTimeoutMs: number;
}

/**
 * Creates this start's run and log folders (after removing those of dead runs) and, with `persist`,
 * takes the persistent data's lock. `cleanup` removes the run folder and releases the lock; logs stay.
 */
export async function openLocalRun(opts: {
  cacheDir: string;
  log: LogFn;
  persist: boolean;
  readyTimeoutMs: number;
  /** Appended to the run id, so two runs of one process never share a folder. */
  label?: string;
}): Promise<{ ctx: LocalContext; cleanup: () => Promise<void> }> {
  const { cacheDir, log } = opts;
  await mkdir(cacheDir, { recursive: true });
  await pruneStale(cacheDir, log);
  const releaseData = opts.persist
    ? await acquireLock(join(cacheDir, "data.lock"), { timeoutMs: 0, what: "persistent data", log })
    : async () => {};
  const run = await createRunDir(cacheDir, opts.label);
  const logDir = join(cacheDir, "logs", run.id);
  await mkdir(logDir, { recursive: true });
  log(`local mode: data ${opts.persist ? join(cacheDir, "data") : run.dir}, logs ${logDir}`);
  const ctx: LocalContext = {
    cacheDir,
    runDir: run.dir,
    logDir,
    log,
    persist: opts.persist,
    readyTimeoutMs: opts.readyTimeoutMs,
  };
  const cleanup = async () => {
    await rm(run.dir, { recursive: true, force: true });
    await releaseData();
  };
  return { ctx, cleanup };
}

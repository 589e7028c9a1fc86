import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import type { LogFn } from "./types.ts";
import { findExecutable, seconds, sleep, tailFile } from "./util.ts";

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  name: string;
  pid: number;
  logFile: string;
  /** Resolves when the process is gone, for whatever reason. */
  exited: Promise<ExitInfo>;
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Last line of defence for a parent that exits without calling stop(): 'exit' handlers must be
 * synchronous, so all we can do is signal. A parent killed outright is covered by pdeathsig below.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
  });
}

// setpriv (util-linux) sets PR_SET_PDEATHSIG and then execs, so the pid stays the server's own
// and the kernel signals the server if this Node process dies, even by SIGKILL.
const setpriv = process.platform === "linux" ? findExecutable("setpriv") : undefined;

export function spawnServer(opts: {
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile: string;
  log: LogFn;
  /** Run as this user (e.g. PostgreSQL, which refuses to run as root). */
  user?: { uid: number; gid: number };
  /** What asks it to stop; SIGTERM unless the server reads that as "wait for clients" (PostgreSQL). */
  stopSignal?: NodeJS.Signals;
}): ServerProcess {
  const fd = openSync(opts.logFile, "a");
  writeSync(fd, `\n=== ${new Date().toISOString()} ${opts.command} ${opts.args.join(" ")}\n`);
  let child: ChildProcess;
  try {
    const [cmd, args] = setpriv
      ? [setpriv, ["--pdeathsig", "SIGTERM", "--", opts.command, ...opts.args]]
      : [opts.command, opts.args];
    child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      // Logs go straight to a file: no pipe to drain, and the file survives us for post-mortems.
      stdio: ["ignore", fd, fd],
      ...(opts.user ?? {}),
      // With pdeathsig guarding against orphans, a process group of its own keeps a terminal's
      // Ctrl-C away from the servers, so they are stopped in order by stop() instead of racing it.
      // Without setpriv, sharing our group is the only way a Ctrl-C still reaches them.
      detached: setpriv !== undefined,
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) {
    // spawn failed synchronously-ish (ENOENT etc.); the 'error' event carries the reason.
    throw new Error(`could not start ${opts.name} (${opts.command})`);
  }
  const pid = child.pid;
  live.add(child);
  installExitHook();
  // A forgotten stop() must not keep the test runner alive forever; the exit hook cleans up.
  child.unref();

  let exitedFlag = false;
  let stopping = false;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("exit", (code, signal) => {
      exitedFlag = true;
      live.delete(child);
      if (!stopping) {
        opts.log(`${opts.name}: exited unexpectedly (code ${code}, signal ${signal}); log: ${opts.logFile}`);
      }
      resolve({ code, signal });
    });
    child.once("error", (err) => {
      exitedFlag = true;
      live.delete(child);
      opts.log(`${opts.name}: process error: ${err.message}`);
      resolve({ code: null, signal: null });
    });
  });

  let stopPromise: Promise<void> | undefined;
  const stop = (graceMs = 15_000): Promise<void> => {
    stopPromise ??= (async () => {
      stopping = true;
      if (exitedFlag) return;
      const t0 = performance.now();
      child.kill(opts.stopSignal ?? "SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        exited.then(() => "exited" as const),
        new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), graceMs);
        }),
      ]);
      // A pending grace timer would keep the caller's process (e.g. a test file) alive for its full length.
      clearTimeout(timer);
      if (outcome === "timeout") {
        opts.log(`${opts.name}: still running ${seconds(graceMs)} after SIGTERM, sending SIGKILL`);
        child.kill("SIGKILL");
        await exited;
      }
      opts.log(`${opts.name}: stopped in ${seconds(performance.now() - t0)}`);
    })();
    return stopPromise;
  };

  return { name: opts.name, pid, logFile: opts.logFile, exited, hasExited: () => exitedFlag, stop };
}

export class ServerExitedError extends Error {
  readonly logTail: string;
  constructor(message: string, logTail: string) {
    super(message);
    this.name = "ServerExitedError";
    this.logTail = logTail;
  }
}

/** The port answered, but not from the process we started: someone else grabbed it first. */
export class ForeignServerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ForeignServerError";
  }
}

/**
 * Polls `probe` until it succeeds, the process dies, or time runs out. Errors carry the tail of the
 * server's log, which is almost always where the actual reason is.
 */
export async function waitUntilReady(opts: {
  server: ServerProcess;
  probe: () => Promise<void>;
  timeoutMs: number;
  intervalMs?: number;
}): Promise<void> {
  const { server } = opts;
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (server.hasExited()) {
      const info = await server.exited;
      const tail = await tailFile(server.logFile);
      throw new ServerExitedError(
        `${server.name} exited before becoming ready (code ${info.code}, signal ${info.signal}).\n` +
          `--- last lines of ${server.logFile} ---\n${tail}`,
        tail,
      );
    }
    try {
      await opts.probe();
      return;
    } catch (err) {
      if (err instanceof ForeignServerError) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) break;
    await Promise.race([sleep(opts.intervalMs ?? 250), server.exited]);
  }
  const tail = await tailFile(server.logFile);
  throw new Error(
    `${server.name} did not become ready within ${seconds(opts.timeoutMs)} ` +
      `(last probe error: ${(lastError as Error | undefined)?.message ?? "none"}).\n` +
      `--- last lines of ${server.logFile} ---\n${tail}`,
  );
}

/**
 * Runs `attempt` up to three times when the failure looks like a lost port race (another process
 * bound the port between our check and the server's bind), so parallel test runs don't fail spuriously.
 */
export async function retryOnPortClash<T>(
  name: string,
  log: LogFn,
  attempt: (n: number) => Promise<T>,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const clash =
        err instanceof ForeignServerError ||
        (err instanceof ServerExitedError && /address already in use|bind|EADDRINUSE/i.test(err.logTail));
      if (!clash || n >= 3) throw err;
      log(`${name}: port was taken by another process, retrying on a different port`);
    }
  }
}

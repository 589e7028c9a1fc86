import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { open } from "node:fs/promises";
import { delimiter, join } from "node:path";
import type { LogFn } from "./types.ts";

export const defaultLog: LogFn = (line) => {
  process.stderr.write(`[infra] ${line}\n`);
};

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** Logs the start and the duration of a step, so a user watching `npm start` sees where time goes. */
export async function timed<T>(log: LogFn, label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  log(`${label}…`);
  try {
    const result = await fn();
    log(`${label}: done in ${seconds(performance.now() - t0)}`);
    return result;
  } catch (err) {
    log(`${label}: FAILED after ${seconds(performance.now() - t0)}`);
    throw err;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** PATH lookup plus well-known locations that a non-login shell (CI, IDEs) often leaves off PATH. */
export function findExecutable(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    ...extraDirs,
    "/usr/local/bin",
    "/usr/bin",
    "/usr/sbin",
  ];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** execFile with a generous buffer and an error message that carries the command's own output. */
export function run(
  cmd: string,
  args: string[],
  opts: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    user?: { uid: number; gid: number };
  } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 0,
        maxBuffer: 64 * 1024 * 1024,
        ...(opts.user ?? {}),
      },
      (err, stdout, stderr) => {
        if (err) {
          const tail = lastLines(`${stdout}\n${stderr}`, 40);
          reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message.split("\n")[0]}\n${tail}`));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

export function lastLines(text: string, n: number): string {
  return text.trimEnd().split("\n").slice(-n).join("\n");
}

/** Last lines of a (possibly large) log file, for error messages. */
export async function tailFile(path: string, n = 40): Promise<string> {
  try {
    const fh = await open(path, "r");
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      return lastLines(buf.toString("utf8"), n);
    } finally {
      await fh.close();
    }
  } catch (err) {
    return `(could not read ${path}: ${(err as Error).message})`;
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

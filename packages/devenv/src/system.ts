import { join } from "node:path";
import { withLock } from "./cache.ts";
import type { LogFn } from "./types.ts";
import { findExecutable, isRoot, run, timed } from "./util.ts";

let aptUpdated = false;

/**
 * Finds a system binary, installing its Debian package when missing. Only done as root with
 * apt-get present (our dev machines and CI); elsewhere the error says what to install.
 */
export async function ensureSystemBinary(opts: {
  binary: string;
  aptPackage: string;
  cacheDir: string;
  log: LogFn;
  extraDirs?: string[];
  /** What else the user can do than install the package; the *_URL variables by default. */
  otherwise?: string;
}): Promise<string> {
  const found = findExecutable(opts.binary, opts.extraDirs);
  if (found) return found;
  if (!canApt()) {
    throw new Error(
      `${opts.binary} not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install -y ${opts.aptPackage}) ` +
        (opts.otherwise ?? "or set the matching *_URL / KAFKA_BROKERS variable to use an existing server."),
    );
  }
  await aptInstall([opts.aptPackage], {
    cacheDir: opts.cacheDir,
    log: opts.log,
    unless: () => findExecutable(opts.binary, opts.extraDirs) !== undefined,
  });
  const installed = findExecutable(opts.binary, opts.extraDirs);
  if (!installed) throw new Error(`installed ${opts.aptPackage} but ${opts.binary} is still not on PATH`);
  return installed;
}

/** Whether we may install Debian packages: root, with apt-get present. */
export function canApt(): boolean {
  return findExecutable("apt-get") !== undefined && isRoot();
}

/**
 * `apt-get install` of `packages` (without their recommendations), after one `apt-get update` per
 * process; `unless` is asked again once the lock is ours, as another process may have installed
 * them meanwhile.
 */
export function aptInstall(
  packages: string[],
  opts: { cacheDir: string; log: LogFn; unless?: () => boolean },
): Promise<void> {
  const aptGet = findExecutable("apt-get");
  if (!aptGet || !isRoot()) throw new Error(`installing ${packages.join(" ")} needs root and apt-get`);
  // dpkg has its own lock but fails instead of waiting; ours makes parallel test processes queue up.
  return withLock(
    join(opts.cacheDir, "locks", "apt"),
    async () => {
      if (opts.unless?.()) return;
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      if (!aptUpdated) {
        await timed(opts.log, "apt-get update", () => run(aptGet, ["-q", "update"], { env }));
        aptUpdated = true;
      }
      await timed(opts.log, `apt-get install ${packages.join(" ")}`, () =>
        run(
          aptGet,
          ["-q", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120", ...packages],
          { env },
        ),
      );
    },
    { log: opts.log, what: "apt" },
  );
}

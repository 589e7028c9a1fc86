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
}): Promise<string> {
  const found = findExecutable(opts.binary, opts.extraDirs);
  if (found) return found;
  const aptGet = findExecutable("apt-get");
  if (!aptGet || !isRoot()) {
    throw new Error(
      `${opts.binary} not found on PATH. Install it (Debian/Ubuntu: sudo apt-get install -y ${opts.aptPackage}) ` +
        `or set the matching *_URL / KAFKA_BROKERS variable to use an existing server.`,
    );
  }
  // dpkg has its own lock but fails instead of waiting; ours makes parallel test processes queue up.
  return withLock(
    join(opts.cacheDir, "locks", "apt"),
    async () => {
      const again = findExecutable(opts.binary, opts.extraDirs);
      if (again) return again;
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      if (!aptUpdated) {
        await timed(opts.log, "apt-get update", () => run(aptGet, ["-q", "update"], { env }));
        aptUpdated = true;
      }
      await timed(opts.log, `apt-get install ${opts.aptPackage}`, () =>
        run(
          aptGet,
          [
            "-q",
            "install",
            "-y",
            "--no-install-recommends",
            "-o",
            "DPkg::Lock::Timeout=120",
            opts.aptPackage,
          ],
          { env },
        ),
      );
      const installed = findExecutable(opts.binary, opts.extraDirs);
      if (!installed) throw new Error(`installed ${opts.aptPackage} but ${opts.binary} is still not on PATH`);
      return installed;
    },
    { log: opts.log, what: "apt" },
  );
}

import { accessSync, constants, existsSync, statSync } from "node:fs";
import { resolveCacheDir } from "./cache.ts";
import { aptInstall, canApt, ensureSystemBinary } from "./system.ts";
import type { LogFn } from "./types.ts";
import { defaultLog, run } from "./util.ts";

/**
 * What headless Chromium needs on our machines: `--no-sandbox` because we run as root, which
 * Chromium's sandbox refuses; no GPU; and none of its own traffic (QUIC, component updates, sync,
 * field trials), as nothing but the package registries is reachable and a browser test must talk
 * only to the servers it started. Each run also needs a new, empty `--user-data-dir` (`chromiumArgs`).
 */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The command line of one headless run with its own profile folder (which must be new and empty). */
export function chromiumArgs(userDataDir: string): string[] {
  return [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`];
}

/**
 * Fonts Chromium needs for pages to look as they should: without a colour emoji font the bot's
 * emoji (🎁, ✨) are empty boxes in the tests' screenshots; Liberation Sans stands in for Arial,
 * which pages name (Debian's chromium only recommends it).
 */
const FONTS = [
  { file: "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", aptPackage: "fonts-noto-color-emoji" },
  { file: "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf", aptPackage: "fonts-liberation" },
];

export interface ChromiumInstall {
  /** The binary to launch: CHROMIUM_PATH, else Debian's `/usr/bin/chromium`. */
  executablePath: string;
  /** What `--version` printed, e.g. "Chromium 156.0.8078.129 built on Debian …". */
  version: string;
}

/**
 * Finds the browser the browser tests drive: the binary CHROMIUM_PATH names, else Debian's
 * `chromium`, installed with apt-get (with the fonts pages need) when missing and we are root, as
 * redis-server and PostgreSQL are. Never a browser download. Missing, broken or not executable is
 * an error that says what to do, so a browser test fails instead of being skipped.
 */
export async function ensureChromium(
  options: { env?: Record<string, string | undefined>; cacheDir?: string; log?: LogFn } = {},
): Promise<ChromiumInstall> {
  const env = options.env ?? process.env;
  const log = options.log ?? defaultLog;
  const cacheDir = resolveCacheDir(options.cacheDir, env);
  let executablePath: string;
  if (env.CHROMIUM_PATH) {
    executablePath = env.CHROMIUM_PATH;
    if (!isExecutableFile(executablePath))
      throw new Error(`CHROMIUM_PATH=${executablePath} is not an executable file`);
  } else {
    executablePath = await ensureSystemBinary({
      binary: "chromium",
      aptPackage: "chromium",
      cacheDir,
      log,
      otherwise: "or set CHROMIUM_PATH to a Chromium or Chrome binary: the browser tests need one.",
    });
  }
  const missing = () => FONTS.filter((font) => !existsSync(font.file)).map((font) => font.aptPackage);
  if (missing().length > 0) {
    if (canApt()) await aptInstall(missing(), { cacheDir, log, unless: () => missing().length === 0 });
    else
      log(
        `fonts missing, so pages will not look right in screenshots: apt-get install ${missing().join(" ")}`,
      );
  }
  // A binary that cannot start (a library missing, a foreign architecture) fails here, with its own
  // words, rather than as a launch timeout in the middle of a test.
  const { stdout } = await run(executablePath, ["--version"], { timeoutMs: 30_000 }).catch((err: Error) => {
    throw new Error(`${executablePath} does not run: ${err.message}`);
  });
  return { executablePath, version: stdout.trim() };
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

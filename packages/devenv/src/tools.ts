import { join } from "node:path";
import { ensureInstalled, resolveCacheDir } from "./cache.ts";
import { ensureSystemBinary } from "./system.ts";
import type { LogFn } from "./types.ts";
import { defaultLog, findExecutable, run, timed } from "./util.ts";

export interface ToolOptions {
  cacheDir?: string;
  log?: LogFn;
}

/**
 * A command-line tool built from the Go module proxy into the cache (e.g. helm), once per version.
 * Used by tests that need the real tool; a missing Go toolchain is an error, never a skip.
 */
export async function ensureGoTool(
  tool: {
    name: string;
    module: string;
    version: string;
    /**
     * The main package inside `module` (e.g. "./cmd/jaeger"). Given, the tool is built inside the
     * module's own source as the main module, so its replace directives apply: `go install
     * module@version` refuses any module whose go.mod has them (Jaeger's does).
     */
    package?: string;
  },
  options: ToolOptions = {},
): Promise<string> {
  const log = options.log ?? defaultLog;
  const go = findExecutable("go", ["/usr/local/go/bin"]);
  if (!go)
    throw new Error(`go is needed to build ${tool.name} ${tool.version}; install Go (https://go.dev/dl)`);
  const dir = join(resolveCacheDir(options.cacheDir, process.env), "tools", `${tool.name}-${tool.version}`);
  await ensureInstalled({
    dir,
    version: `${tool.module}@${tool.version}`,
    log,
    what: tool.name,
    build: (scratch) =>
      timed(
        log,
        `building ${tool.name} ${tool.version} with go ${tool.package ? "build" : "install"}`,
        async () => {
          const env = { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-trimpath" };
          if (!tool.package) {
            await run(go, ["install", `${tool.module}@${tool.version}`], { env: { ...env, GOBIN: scratch } });
            return;
          }
          const { stdout } = await run(go, ["mod", "download", "-json", `${tool.module}@${tool.version}`], {
            cwd: scratch,
            env,
          });
          const source = (JSON.parse(stdout) as { Dir: string }).Dir;
          await run(go, ["build", "-o", join(scratch, tool.name), tool.package], { cwd: source, env });
        },
      ),
  });
  return join(dir, tool.name);
}

/** A command-line tool from PyPI, installed into its own virtualenv in the cache, once per version. */
export async function ensurePythonTool(
  tool: { name: string; pipPackage: string; version: string },
  options: ToolOptions = {},
): Promise<string> {
  const log = options.log ?? defaultLog;
  const python = findExecutable("python3");
  if (!python) throw new Error(`python3 is needed for ${tool.name}`);
  const dir = join(resolveCacheDir(options.cacheDir, process.env), "tools", `${tool.name}-${tool.version}`);
  await ensureInstalled({
    dir,
    version: `${tool.pipPackage}==${tool.version}`,
    log,
    what: tool.name,
    build: (scratch) =>
      timed(log, `installing ${tool.pipPackage} ${tool.version} from PyPI`, async () => {
        await run(python, ["-m", "venv", scratch]);
        await run(join(scratch, "bin", "python"), [
          "-m",
          "pip",
          "install",
          "-q",
          `${tool.pipPackage}==${tool.version}`,
        ]);
      }),
  });
  // The venv was built in a scratch folder and renamed, so its console scripts' shebangs point at
  // the old path: callers run the tool as `python -m <module>` with this interpreter.
  return join(dir, "bin", "python");
}

/**
 * A program from Debian's packages (e.g. wrk), installed with apt-get when it is missing and we
 * may (root); otherwise an error that says what to install.
 */
export function ensureDebianTool(tool: { binary: string; aptPackage: string }, options: ToolOptions = {}) {
  return ensureSystemBinary({
    ...tool,
    cacheDir: resolveCacheDir(options.cacheDir, process.env),
    log: options.log ?? defaultLog,
  });
}

export { CHROMIUM_FLAGS, type ChromiumInstall, chromiumArgs, ensureChromium } from "./chromium.ts";

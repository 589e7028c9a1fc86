import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

export const root = new URL("..", import.meta.url).pathname;

/** Runs a command from the repo root with inherited output; rejects with its exit code. */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: root,
      stdio: "inherit",
      env: { TURBO_TELEMETRY_DISABLED: "1", ...env },
    });
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${command} ${args.join(" ")} exited with ${signal ?? code}`)),
    );
  });
}

/** Timed step with a one-line report, so a slow set-up shows where its time goes. */
export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  process.stderr.write(`[taituri] ${name}…\n`);
  const result = await fn();
  process.stderr.write(`[taituri] ${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)}s\n`);
  return result;
}

/** Loads ./.env into process.env (existing variables win), if the file exists. */
export function loadDotEnv(): void {
  const path = `${root}.env`;
  if (existsSync(path)) process.loadEnvFile(path);
}

/** A tool installed by npm into node_modules/.bin. */
export const bin = (name: string) => `${root}node_modules/.bin/${name}`;

/** Protobuf code generation (buf lint + ts-proto), cached by Turborepo. */
export const generate = () => run(bin("turbo"), ["run", "generate", "--output-logs=errors-only"]);

import { type ChildProcess, spawn } from "node:child_process";
import { eventually } from "@taituri/testing/harness";

/** A service run as `node services/<name>/src/main.ts`, its output kept. */
export interface ServiceProcess {
  child: ChildProcess;
  /** Where its ops routes answer. */
  url: string;
  output(): string;
  /** The JSON log lines so far. */
  lines(): { msg?: string; level?: string; [field: string]: unknown }[];
  /** Resolves once /healthz answers (it listens at once, its dependencies there or not). */
  listening(): Promise<void>;
  /** SIGTERM, then SIGKILL if it has not exited within 20 s. */
  stop(): Promise<void>;
}

/**
 * Spawns a service's main.ts with `env` over this process's (minus the run's Kafka master secret,
 * which is for startInfra, not a service), logging JSON at info, telemetry exporters off, its ops
 * on `port`. TEST_LOG_LEVEL set: its output is copied to stderr.
 */
export function spawnService(name: string, port: number, env: Record<string, string>): ServiceProcess {
  const root = new URL("../../../", import.meta.url).pathname;
  const processEnv: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    ...env,
  };
  delete processEnv.TAITURI_KAFKA_AUTH;
  const child = spawn(process.execPath, [`services/${name}/src/main.ts`], {
    cwd: root,
    env: processEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    if (process.env.TEST_LOG_LEVEL) process.stderr.write(chunk);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const url = `http://127.0.0.1:${port}`;
  return {
    child,
    url,
    output: () => output,
    lines: () =>
      output
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { msg?: string }),
    async listening() {
      await eventually(
        `${name} listening`,
        async () => {
          if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${output}`);
          return (await fetch(`${url}/healthz`)).ok;
        },
        60_000,
      );
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** GET /readyz: its status and body. */
export async function readyz(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: await response.json() };
}

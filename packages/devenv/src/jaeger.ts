import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, LOOPBACK } from "./ports.ts";
import { retryOnPortClash, spawnServer, waitUntilReady } from "./process.ts";
import { ensureGoTool } from "./tools.ts";
import type { LogFn } from "./types.ts";
import { defaultLog, timed } from "./util.ts";

/**
 * Jaeger v2 (an OpenTelemetry Collector distribution). The v1.x tags of the module carry the v2
 * binary in ./cmd/jaeger; docs/infrastructure.md records why this one and how it is built.
 */
export const JAEGER_TOOL = {
  name: "jaeger",
  module: "github.com/jaegertracing/jaeger",
  version: "v1.76.0",
  package: "./cmd/jaeger",
} as const;

export interface Jaeger {
  /** OTLP over HTTP, the base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends /v1/traces). */
  otlpEndpoint: string;
  /** The query service: the UI at "/", the JSON API at /api/traces and /api/v3/traces. */
  queryUrl: string;
  logFile: string;
  stop(): Promise<void>;
}

export interface JaegerOptions {
  log?: LogFn;
  /** Fixed ports (npm start); free loopback ports otherwise. */
  otlpPort?: number;
  queryPort?: number;
  readyTimeoutMs?: number;
  /**
   * A jaeger-ui build (its `packages/jaeger-ui/build` folder) for the query service to serve at
   * "/". A binary from the Go module proxy embeds only a placeholder page: the UI is a separate
   * npm project that Jaeger's release build embeds, and no registry here serves it.
   */
  uiAssetsPath?: string;
}

/**
 * An all-in-one Jaeger with in-memory storage on loopback ports: an OTLP/HTTP receiver in front of
 * the storage exporter, and the query extension. Spans live as long as the process.
 */
export async function startJaeger(options: JaegerOptions = {}): Promise<Jaeger> {
  const log = options.log ?? defaultLog;
  const binary = await ensureGoTool(JAEGER_TOOL, { log });
  const dir = await mkdtemp(join(tmpdir(), "taituri-jaeger-"));
  return retryOnPortClash("jaeger", log, async () => {
    const ports = {
      otlp: options.otlpPort ?? (await freePort()),
      query: options.queryPort ?? (await freePort()),
      queryGrpc: await freePort(),
    };
    const config = join(dir, "config.yaml");
    await writeFile(config, jaegerConfig(ports, options.uiAssetsPath));
    const logFile = join(dir, "jaeger.log");
    const server = spawnServer({
      name: "jaeger",
      command: binary,
      args: ["--config", config],
      cwd: dir,
      // Our OTEL_* settings are for our services, not for Jaeger's own SDK.
      env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("OTEL_"))),
      logFile,
      log,
    });
    const queryUrl = `http://${LOOPBACK}:${ports.query}`;
    try {
      await timed(log, `jaeger: waiting for the query API on ${queryUrl} (pid ${server.pid})`, () =>
        waitUntilReady({
          server,
          timeoutMs: options.readyTimeoutMs ?? 60_000,
          probe: async () => {
            // The receiver starts after the extensions: ask both.
            const query = await fetch(`${queryUrl}/api/services`);
            if (!query.ok) throw new Error(`query API answered ${query.status}`);
            const otlp = await fetch(`http://${LOOPBACK}:${ports.otlp}/v1/traces`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: "{}",
            });
            if (!otlp.ok) throw new Error(`OTLP receiver answered ${otlp.status}`);
          },
        }),
      );
    } catch (error) {
      await server.stop(5_000);
      throw error;
    }
    return {
      otlpEndpoint: `http://${LOOPBACK}:${ports.otlp}`,
      queryUrl,
      logFile,
      async stop() {
        await server.stop(10_000);
        await rm(dir, { recursive: true, force: true });
      },
    };
  });
}

/**
 * Collector-style configuration. Jaeger's own telemetry is off: its metrics would take port 8888,
 * which a second Jaeger (another test run) could not bind, and the query extension's own traces
 * would go to localhost:4317 and hold up shutdown for 10 s retrying.
 */
function jaegerConfig(
  ports: { otlp: number; query: number; queryGrpc: number },
  uiAssetsPath?: string,
): string {
  return `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: ${LOOPBACK}:${ports.query}
    grpc:
      endpoint: ${LOOPBACK}:${ports.queryGrpc}
${uiAssetsPath ? `    ui:\n      assets_path: ${JSON.stringify(uiAssetsPath)}\n` : ""}
receivers:
  otlp:
    protocols:
      http:
        endpoint: ${LOOPBACK}:${ports.otlp}

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}

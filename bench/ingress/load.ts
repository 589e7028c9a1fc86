/**
 * The load generator, in its own process so that its CPU is not the server's event loop. Forked by
 * run.ts: receives one LoadSpec over IPC, runs wrk (wrk.ts) or autocannon with it, sends back one
 * LoadResult, exits.
 */
import type { EventEmitter } from "node:events";
import autocannon from "autocannon";
import { type BodyOptions, webhookBodies } from "./bodies.ts";
import { prepareWrk } from "./wrk.ts";

export interface LoadSpec {
  url: string;
  connections: number;
  durationSec: number;
  bodies: BodyOptions;
  /** The path of wrk to drive the load with; autocannon, in this process, without it. */
  wrk?: string;
}

export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  durationSec: number;
  /**
   * Requests written to a socket (answered or not when the run stopped); from wrk, an upper bound
   * (answered, plus one per connection).
   */
  sent: number;
  ok: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  errors: number;
  timeouts: number;
  /** 2xx answers per second. */
  okPerSec: number;
  /** Of the 2xx answers, measured here (autocannon's own histogram rounds to whole milliseconds). */
  latencyMs: LatencyMs;
  meanBodyBytes: number;
  /** CPU the load generator itself used, in cores (1 = one core busy all the time). */
  cpuCores: number;
}

// Enough for a run of minutes at tens of thousands of answers per second; a longer run keeps the
// first ones and says so through `recorded`.
const MAX_SAMPLES = 5_000_000;

/** Whatever a run needs before it starts (wrk's signed bodies), then the run itself. */
export async function prepareLoad(spec: LoadSpec): Promise<() => Promise<LoadResult>> {
  if (spec.wrk) return prepareWrk(spec, spec.wrk);
  return () => runAutocannon(spec);
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const next = webhookBodies(spec.bodies);
  const samples = new Float64Array(MAX_SAMPLES);
  let recorded = 0;
  let bodyBytes = 0;
  let bodies = 0;
  const url = new URL(spec.url);
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const options: autocannon.Options = {
    url: url.origin,
    connections: spec.connections,
    duration: spec.durationSec,
    pipelining: 1,
    timeout: 10,
    requests: [
      {
        method: "POST",
        path: url.pathname,
        setupRequest: (request) => {
          const { body, signature } = next();
          bodyBytes += body.length;
          bodies += 1;
          return {
            ...request,
            body,
            headers: { "content-type": "application/json", "x-hub-signature-256": signature },
          };
        },
      },
    ],
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (error, result) => (error ? reject(error) : resolve(result)));
    // autocannon emits (client, statusCode, bytes, responseTime); its typings leave out the client.
    (instance as unknown as EventEmitter).on(
      "response",
      (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
        if (statusCode >= 200 && statusCode < 300 && recorded < MAX_SAMPLES)
          samples[recorded++] = responseTime;
      },
    );
  });
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - wall0;
  const sorted = samples.subarray(0, recorded).sort();
  const at = (q: number) => round(sorted[Math.min(recorded - 1, Math.ceil(q * recorded) - 1)] ?? Number.NaN);
  let sum = 0;
  for (const value of sorted) sum += value;
  const ok = result["2xx"];
  const statusCodes: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(
    (result as unknown as { statusCodeStats: Record<string, { count: number }> }).statusCodeStats ?? {},
  ))
    statusCodes[code] = count;
  return {
    durationSec: result.duration,
    sent: result.requests.sent,
    ok,
    non2xx: result.non2xx,
    statusCodes,
    errors: result.errors,
    timeouts: result.timeouts,
    okPerSec: round(ok / result.duration),
    latencyMs: {
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      p999: at(0.999),
      max: at(1),
      mean: round(sum / recorded),
    },
    meanBodyBytes: Math.round(bodyBytes / Math.max(1, bodies)),
    cpuCores: round((cpu.user + cpu.system) / 1000 / wallMs),
  };
}

const round = (value: number) => Math.round(value * 100) / 100;

// Forked by run.ts: a spec in; "ready" out once prepared; "go" in; one result out.
if (process.send) {
  const fail = (error: unknown) => process.send?.({ error: String(error) }, () => process.exit(1));
  process.once("message", (spec: LoadSpec) => {
    prepareLoad(spec).then((start) => {
      process.once("message", () =>
        start().then((result) => process.send?.({ result }, () => process.exit(0)), fail),
      );
      process.send?.({ ready: true });
    }, fail);
  });
}

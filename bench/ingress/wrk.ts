/**
 * The load generator run through wrk (C, from Debian's `wrk` package): the same signed webhooks
 * as autocannon's run (load.ts), signed beforehand and replayed by webhooks.lua beside this file.
 *
 * Why: the load generator shares the machine with the broker. autocannon needed 0.45 of a core
 * for 8,000 requests/s, and its own event loop's delays counted in the latency it measured.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { webhookBodies } from "./bodies.ts";
import type { LatencyMs, LoadResult, LoadSpec } from "./load.ts";

/**
 * Distinct bodies per run. Past this many requests the ids repeat: the benchmark runs ingress with
 * WEBHOOK_RECENT_IDS=0, so a repeat is produced like a new message all the same. More would cost
 * the load generator's Lua heap about 2.6 KB each.
 */
const MAX_BODIES = 120_000;
const BODIES_PER_SECOND = 10_000;

/** What webhooks.lua reports: counts, and latency figures named as in load.ts but in µs (converted below). */
interface WrkSummary extends LatencyMs {
  requests: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
}

/**
 * Signs the run's bodies into a file (seconds of CPU, so before the measured window starts), then
 * returns the run itself, which deletes the file when done.
 */
export async function prepareWrk(spec: LoadSpec, wrk: string): Promise<() => Promise<LoadResult>> {
  const file = join(tmpdir(), `taituri-webhooks-${randomUUID()}.tsv`);
  const count = Math.min(MAX_BODIES, Math.ceil(spec.durationSec * BODIES_PER_SECOND));
  try {
    const meanBodyBytes = await writeBodies(file, spec, count);
    return () => runWrk(spec, wrk, file, meanBodyBytes).finally(() => rm(file, { force: true }));
  } catch (error) {
    await rm(file, { force: true });
    throw error;
  }
}

async function runWrk(spec: LoadSpec, wrk: string, file: string, meanBodyBytes: number): Promise<LoadResult> {
  const { stdout, stderr, code } = await runCommand(
    "bash",
    [
      "-c",
      // `times` reports the CPU the shell's children (wrk) used: the load generator's own share.
      'wrk "$@"; status=$?; times; exit $status',
      "wrk",
      "-t1",
      `-c${spec.connections}`,
      `-d${spec.durationSec}s`,
      "--timeout",
      "10s",
      "-s",
      new URL("webhooks.lua", import.meta.url).pathname,
      spec.url,
      "--",
      file,
    ],
    { PATH: `${join(wrk, "..")}:${process.env.PATH ?? ""}` },
  );
  const line = stdout.split("\n").find((l) => l.startsWith("WRK_RESULT "));
  if (code !== 0 || !line) throw new Error(`wrk failed (${code}): ${stderr.trim() || stdout.trim()}`);
  const w = JSON.parse(line.slice("WRK_RESULT ".length)) as WrkSummary;
  const durationSec = w.durationUs / 1e6;
  const ok = w.requests - w.status;
  const errors = w.connect + w.read + w.write;
  return {
    durationSec: round(durationSec),
    // wrk does not count what it wrote but got no answer to before the end: at most one request
    // per connection (no pipelining), so this is an upper bound.
    sent: w.requests + spec.connections,
    ok,
    non2xx: w.status,
    statusCodes: { "2xx": ok, "non-2xx or 3xx": w.status },
    errors,
    timeouts: w.timeout,
    okPerSec: round(ok / durationSec),
    latencyMs: {
      p50: ms(w.p50),
      p90: ms(w.p90),
      p99: ms(w.p99),
      p999: ms(w.p999),
      max: ms(w.max),
      mean: ms(w.mean),
    },
    meanBodyBytes,
    cpuCores: round(childrenCpuSeconds(stdout) / durationSec),
  };
}

/** Writes `count` signed bodies, one "signature\tbody" per line; returns their mean size. */
async function writeBodies(file: string, spec: LoadSpec, count: number): Promise<number> {
  const next = webhookBodies(spec.bodies);
  const out = createWriteStream(file);
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const { body, signature } = next();
    // JSON.stringify escapes tabs and newlines inside strings, so neither appears in a body.
    bytes += Buffer.byteLength(body);
    if (!out.write(`${signature}\t${body}\n`)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  return Math.round(bytes / count);
}

/** The second line of bash's `times`: the children's user and system time, e.g. "0m1.5s 0m0.2s". */
function childrenCpuSeconds(stdout: string): number {
  const lines = stdout.trim().split("\n");
  const children = lines[lines.length - 1] ?? "";
  let total = 0;
  for (const [, minutes, seconds] of children.matchAll(/(\d+)m([\d.]+)s/g))
    total += Number(minutes) * 60 + Number(seconds);
  return total;
}

function runCommand(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => resolve({ stdout, stderr, code }));
  });
}

const round = (value: number) => Math.round(value * 100) / 100;
const ms = (us: number) => round(us / 1000);

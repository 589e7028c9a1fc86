/**
 * The ingress benchmark (`node bench/ingress/run.ts`; `npm run bench` runs it first): the ingress
 * webhook against its targets, next to a bare Fastify hello-world measured in the same run on the
 * same machine.
 *
 * Starts Kafka (and the MongoDB-wire server ingress needs at start-up) with startInfra, the real
 * ingress service as a child process, and the load generator (wrk, driven from another child
 * process; `--generator autocannon` for the Node one) in another; sends signed 1–4 KB
 * webhooks (wrk replays up to 120,000 distinct ones, signed beforehand; autocannon signs a new
 * one per request); then counts the records in the inbound topic and checks
 * that every acknowledged webhook is there. Writes bench/results/ingress-<date>.json and .md and
 * bench/results/latest.md. A missed target is a finding, printed as MISS and recorded: the exit
 * code is non-zero only when the benchmark itself broke.
 *
 * Then the cost of tracing: ingress again with the OpenTelemetry SDK off, then on with
 * parent-based ratio sampling at 10 % and at 100 %, exporting OTLP/HTTP to a sink in this process
 * that accepts and discards (so no Jaeger is needed), each run as long as the others; the report
 * gives each one's acks/s and p99 and their ratios to the untraced run.
 *
 * Options: --duration S (measured run, default 20), --warmup S (default 15), --connections N
 * (default 32), --tracing-duration S (each tracing comparison run, default 10; 0 skips them),
 * --tracing-warmup S (default 5), --env KEY=VALUE (extra ingress setting, repeatable), --note TEXT,
 * --out DIR (default bench/results), --dry (no files), --pin auto|off (see PINNING),
 * --generator wrk|autocannon (default wrk, installed from Debian's packages when missing).
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { arch, cpus, loadavg, release, totalmem } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { freePort, type Infra, KAFKA_VERSION, startInfra } from "@taituri/devenv";
import { ensureDebianTool } from "@taituri/devenv/tools";
import { createKafka, deadLetterTopic, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { connectMongo } from "@taituri/mongo";
import { coresSince, cpuSnapshot } from "../cpu.ts";
import type { BodyOptions } from "./bodies.ts";
import type { LoadResult, LoadSpec } from "./load.ts";

const TARGETS = { acksPerSec: 8000, p99Ms: 10 } as const;

const root = new URL("../..", import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "20" },
    // Long enough for a freshly started Kafka's JIT to settle too: after a 5 s warm-up the broker
    // still spent nearly twice the CPU per request it spends after 15 s (77 vs 42 µs, measured).
    warmup: { type: "string", default: "15" },
    connections: { type: "string", default: "32" },
    env: { type: "string", multiple: true, default: [] },
    note: { type: "string", default: "" },
    dry: { type: "boolean", default: false },
    out: { type: "string", default: "bench/results" },
    pin: { type: "string", default: "auto" },
    generator: { type: "string", default: "wrk" },
    "tracing-duration": { type: "string", default: "10" },
    "tracing-warmup": { type: "string", default: "5" },
  },
});
const durationSec = positive("duration", args.duration);
if (args.generator !== "wrk" && args.generator !== "autocannon")
  throw new Error("--generator wants wrk or autocannon");
/** wrk's path once main() has made sure it is installed; autocannon drives the load without it. */
let wrk: string | undefined;
const warmupSec = positive("warmup", args.warmup);
const connections = positive("connections", args.connections);
const tracingSec = Number(args["tracing-duration"]);
const tracingWarmupSec = positive("tracing-warmup", args["tracing-warmup"]);
if (!Number.isFinite(tracingSec) || tracingSec < 0)
  throw new Error("--tracing-duration wants seconds (0: skip)");
const extraEnv = Object.fromEntries(
  args.env.map((pair) => {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error(`--env wants KEY=VALUE, got ${pair}`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);

/**
 * PINNING: on Linux with two or more cores, the server under test (ingress, then bare Fastify) gets
 * core 0 to itself and everything else we start (load generator, Kafka) shares the others. The
 * load generator and the broker then never take the server's core, so the two servers are compared
 * on the same footing and the server's latency is its own. `--pin off` lets the OS schedule freely.
 */
const pinning = args.pin !== "off" && process.platform === "linux" && cpus().length >= 2 && hasTaskset();
const SERVER_CPUS = "0";
const OTHER_CPUS = cpus().length === 2 ? "1" : `1-${cpus().length - 1}`;

const run = randomUUID().slice(0, 8);
const SECRET = `bench-secret-${run}`;
const bodyOptions = (phase: string): BodyOptions => ({
  secret: SECRET,
  runId: `${run}${phase}`,
  minBytes: 1024,
  maxBytes: 4096,
  templates: 256,
});
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

// Everything this run started, so that any failure, signal or timeout stops all of it.
const children = new Set<ChildProcess>();
let infra: Infra | undefined;
async function cleanup(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child)));
  await infra?.stop();
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  log(`benchmark broke: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await cleanup().catch((e: unknown) => log(`cleanup failed: ${String(e)}`));
  process.exit(1);
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const loadBefore = loadavg();
  log(`run ${run}: ${connections} connections, ${warmupSec}s warm-up + ${durationSec}s measured per server`);
  if (args.generator === "wrk") wrk = await ensureDebianTool({ binary: "wrk", aptPackage: "wrk" }, { log });
  infra = await startInfra({ log: (line) => log(`infra: ${line}`) });
  const kafkaProcess = kafkaPid(infra.kafka.brokers[0]);
  // Only a broker this run started is moved; one named by KAFKA_BROKERS belongs to someone else.
  if (pinning && infra.mode === "local" && kafkaProcess !== undefined) pin(kafkaProcess, OTHER_CPUS);
  // From here on the whole run is bounded: two servers, each a warm-up and a measured run, plus
  // generous start, stop and counting time.
  const watchdog = setTimeout(
    () => {
      log("benchmark exceeded its time budget: stopping");
      void cleanup().finally(() => process.exit(1));
    },
    (240 + 2 * (warmupSec + durationSec) * 1.5 + 3 * (90 + (tracingWarmupSec + tracingSec) * 1.5)) * 1000,
  );

  const prefix = `bench-${run}.`;
  const topics = topicNames(prefix);
  const port = await freePort();
  // /readyz is on a port of its own, apart from the webhook's.
  const opsPort = await freePort();
  // Ingress logs in to Kafka as itself (infra.kafka.settings), allowed only what
  // packages/kafka/data/access.json gives it under this run's prefix.
  await infra.kafka.authorize(prefix);
  const ingressEnv: Record<string, string> = {
    ...infra.kafka.settings("ingress"),
    MONGO_URL: infra.mongo.url,
    MONGO_DB: `bench_${run}`,
    REDIS_URL: infra.redis.url,
    KAFKA_TOPIC_PREFIX: prefix,
    INGRESS_HOST: "127.0.0.1",
    INGRESS_PORT: String(port),
    INGRESS_OPS_PORT: String(opsPort),
    WHATSAPP_APP_SECRET: SECRET,
    WHATSAPP_VERIFY_TOKEN: "bench-verify",
    WHATSAPP_ACCESS_TOKEN: "bench-token",
    // Never called: the dispatcher is off.
    WHATSAPP_API_URL: "http://127.0.0.1:9",
    OUTBOUND_DISPATCHER: "false",
    LOG_LEVEL: "warn",
    OTEL_SDK_DISABLED: "true",
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    // Every request is really produced: none is dropped as a retry of an earlier one.
    WEBHOOK_RECENT_IDS: "0",
    ...extraEnv,
  };

  log(`starting ingress on port ${port}`);
  const ingress = startChild("ingress", ["services/ingress/src/main.ts"], ingressEnv);
  await waitUntil("ingress /readyz", ingress, async () => {
    const response = await fetch(`http://127.0.0.1:${opsPort}/readyz`);
    return response.ok;
  });
  const webhook = `http://127.0.0.1:${port}/webhook`;
  log("ingress: warm-up");
  const ingressWarmup = await load(webhook, warmupSec, bodyOptions("w"));
  log("ingress: measured run");
  const watched = byPid({ ingress: ingress.child.pid, kafka: kafkaProcess });
  let cpu0: CpuSnapshot | undefined;
  const ingressRun = await load(webhook, durationSec, bodyOptions("m"), () => {
    cpu0 = snapshot(watched);
  });
  const cpu = cpuUsed(cpu0, ingressRun);
  await stopChild(ingress.child);

  const inKafka = await countRecords(
    infra.kafka.client,
    [topics.inbound, deadLetterTopic(topics.inbound)],
    prefix,
  );
  await dropDatabase(infra.mongo.url, ingressEnv.MONGO_DB ?? "");
  const acked = ingressWarmup.ok + ingressRun.ok;
  const sent = ingressWarmup.sent + ingressRun.sent;
  const inbound = inKafka[topics.inbound] ?? 0;
  const deadLettered = inKafka[deadLetterTopic(topics.inbound)] ?? 0;

  const tracing = tracingSec > 0 ? await tracingRuns(ingressEnv, port, opsPort) : undefined;

  log("starting bare Fastify");
  const barePort = await freePort();
  const bare = startChild("bare-fastify", ["bench/ingress/hello.ts"], { BENCH_PORT: String(barePort) });
  const bareUrl = `http://127.0.0.1:${barePort}/webhook`;
  await waitUntil("bare Fastify", bare, async () => {
    const response = await fetch(bareUrl, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    return response.ok;
  });
  log("bare Fastify: warm-up");
  await load(bareUrl, warmupSec, bodyOptions("bw"));
  log("bare Fastify: measured run");
  let bareCpu0: CpuSnapshot | undefined;
  const bareRun = await load(bareUrl, durationSec, bodyOptions("bm"), () => {
    bareCpu0 = snapshot(byPid({ bareFastify: bare.child.pid }));
  });
  const bareCpu = cpuUsed(bareCpu0, bareRun);
  await stopChild(bare.child);
  clearTimeout(watchdog);

  const gitStatus = git(["status", "--porcelain"]);
  const failures = ingressWarmup.non2xx + ingressWarmup.errors + ingressRun.non2xx + ingressRun.errors;
  const report = {
    date: startedAt.toISOString(),
    run,
    note: args.note,
    targets: TARGETS,
    verdict: {
      acksPerSec: ingressRun.okPerSec >= TARGETS.acksPerSec ? "PASS" : "MISS",
      p99: ingressRun.latencyMs.p99 <= TARGETS.p99Ms ? "PASS" : "MISS",
      // Every acknowledged event is in Kafka; the only extra records allowed are requests that were
      // sent and stored but whose answer the load generator stopped waiting for at the end of a run.
      everyAckedEventInKafka: inbound >= acked && inbound <= sent && deadLettered === 0 ? "PASS" : "MISS",
      noErrors: failures === 0 ? "PASS" : "MISS",
    },
    ingress: { warmup: ingressWarmup, measured: ingressRun },
    bareFastify: { measured: bareRun },
    ratio: round(ingressRun.okPerSec / bareRun.okPerSec),
    tracing,
    kafka: { inbound, deadLettered, acked, sent, storedButUnanswered: inbound - acked },
    // CPU time per answered request is steadier than answers/s on a shared machine.
    cpuCores: { ingressRun: cpu, bareFastifyRun: bareCpu },
    serverCpuMicrosPerRequest: {
      ingress: perRequest(cpu?.ingress, ingressRun),
      bareFastify: perRequest(bareCpu?.bareFastify, bareRun),
    },
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memoryGiB: round(totalmem() / 2 ** 30),
      os: `${process.platform} ${release()} ${arch()}`,
      node: process.version,
      kafka: infra.mode === "env" ? "external (KAFKA_BROKERS)" : `${KAFKA_VERSION} (${infra.mode})`,
      loadAverageBefore: loadBefore.map(round),
    },
    config: {
      commit: git(["rev-parse", "--short", "HEAD"]) ?? "unknown",
      uncommittedChanges: gitStatus === undefined ? ("unknown" as const) : gitStatus !== "",
      loadGenerator: {
        tool: wrk ? `wrk ${wrkVersion(wrk)}, 1 thread, bench/ingress/webhooks.lua` : "autocannon",
        connections,
        pipelining: 1,
        warmupSec,
        durationSec,
        timeoutSec: 10,
      },
      cpuPinning: pinning
        ? {
            server: SERVER_CPUS,
            loadGenerator: OTHER_CPUS,
            kafka: infra.mode === "local" && kafkaProcess !== undefined ? OTHER_CPUS : "not pinned",
          }
        : ("off" as const),
      bodies: { ...bodyOptions("m"), secret: "(per run)", runId: "(per run and phase)" },
      ingressEnv: {
        ...ingressEnv,
        WHATSAPP_APP_SECRET: "(per run)",
        ...(ingressEnv.KAFKA_OAUTH_CLIENT_SECRET ? { KAFKA_OAUTH_CLIENT_SECRET: "(per run)" } : {}),
      },
      kafkaPartitions: ingressEnv.KAFKA_PARTITIONS ?? "default (6)",
      kafkaAcks: "all (-1), idempotent producer, 1 request in flight, group commit",
    },
  };
  await infra.stop();

  const markdown = renderMarkdown(report);
  process.stdout.write(`\n${markdown}\n`);
  if (!args.dry) {
    const dir = resolve(root, args.out);
    mkdirSync(dir, { recursive: true });
    const stamp = startedAt.toISOString().slice(0, 16).replace(":", "");
    writeFileSync(`${dir}/ingress-${stamp}Z.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(`${dir}/ingress-${stamp}Z.md`, markdown);
    writeFileSync(`${dir}/latest.md`, markdown);
    // In the repository's own format, so `npm run check` (biome) passes with results committed.
    try {
      execFileSync(`${root}node_modules/.bin/biome`, ["format", "--write", `${dir}/ingress-${stamp}Z.json`], {
        stdio: "ignore",
      });
    } catch {
      log("could not format the JSON with biome; it is valid JSON all the same");
    }
    log(`recorded ${dir}/ingress-${stamp}Z.json and .md, and ${dir}/latest.md`);
  }
}

interface TracingVariant {
  sampling: string;
  okPerSec: number;
  p99Ms: number;
  /** Of the untraced run in this comparison. */
  okPerSecRatio: number;
  p99Ratio: number;
  non2xx: number;
  errors: number;
  /** What the OTLP sink received during this variant (0 with tracing off). */
  exportRequests: number;
  exportBytes: number;
}

interface TracingReport {
  warmupSec: number;
  durationSec: number;
  exporter: string;
  sampler: string;
  variants: TracingVariant[];
}

/**
 * Ingress untraced, then traced at 10 % and 100 % sampling, each started afresh on the same port
 * and topics with the same warm-up and run length, so the ratios compare like with like. Spans go
 * over OTLP/HTTP to a sink here that answers 200 and discards them: the SDK does all its work
 * (sampling, span creation, batching, protobuf encoding, HTTP export), and no collector is needed.
 */
async function tracingRuns(
  baseEnv: Record<string, string>,
  port: number,
  opsPort: number,
): Promise<TracingReport> {
  // Declared here, not at the top: main() runs from the module's top level before later constants.
  const SAMPLING: { name: string; env: Record<string, string> }[] = [
    { name: "off", env: { OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "none" } },
    { name: "10 %", env: { OTEL_TRACES_SAMPLER_ARG: "0.1" } },
    { name: "100 %", env: { OTEL_TRACES_SAMPLER_ARG: "1.0" } },
  ];
  const sink = { requests: 0, bytes: 0 };
  const server = createHttpServer((request, response) => {
    let bytes = 0;
    request.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    request.on("end", () => {
      if (request.method === "POST" && request.url === "/v1/traces") {
        sink.requests += 1;
        sink.bytes += bytes;
        response.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      } else response.writeHead(404).end();
    });
  });
  const sinkPort = await freePort();
  await new Promise<void>((resolve) => server.listen(sinkPort, "127.0.0.1", resolve));
  const variants: TracingVariant[] = [];
  try {
    for (const sampling of SAMPLING) {
      const env: Record<string, string> = {
        ...baseEnv,
        OTEL_SDK_DISABLED: "false",
        OTEL_TRACES_EXPORTER: "otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`,
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        ...sampling.env,
      };
      log(
        `ingress with tracing ${sampling.name}: start, ${tracingWarmupSec}s warm-up, ${tracingSec}s measured`,
      );
      const ingress = startChild(`ingress (tracing ${sampling.name})`, ["services/ingress/src/main.ts"], env);
      await waitUntil(
        "ingress /readyz",
        ingress,
        async () => (await fetch(`http://127.0.0.1:${opsPort}/readyz`)).ok,
      );
      const webhook = `http://127.0.0.1:${port}/webhook`;
      await load(webhook, tracingWarmupSec, bodyOptions(`tw${variants.length}`));
      let before = { ...sink };
      const result = await load(webhook, tracingSec, bodyOptions(`tm${variants.length}`), () => {
        before = { ...sink };
      });
      const exported = { requests: sink.requests - before.requests, bytes: sink.bytes - before.bytes };
      await stopChild(ingress.child);
      const off = variants[0];
      variants.push({
        sampling: sampling.name,
        okPerSec: result.okPerSec,
        p99Ms: result.latencyMs.p99,
        okPerSecRatio: off ? round(result.okPerSec / off.okPerSec) : 1,
        p99Ratio: off ? round(result.latencyMs.p99 / off.p99Ms) : 1,
        non2xx: result.non2xx,
        errors: result.errors,
        exportRequests: exported.requests,
        exportBytes: exported.bytes,
      });
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  if ((variants[2]?.exportRequests ?? 0) === 0)
    throw new Error("tracing at 100 % exported nothing to the sink");
  return {
    warmupSec: tracingWarmupSec,
    durationSec: tracingSec,
    exporter: "OTLP/HTTP protobuf to a local sink that discards",
    sampler: "parentbased_traceidratio",
    variants,
  };
}

type Report = {
  date: string;
  note: string;
  verdict: Record<string, string>;
  ingress: { measured: LoadResult };
  bareFastify: { measured: LoadResult };
  ratio: number;
  tracing: TracingReport | undefined;
  kafka: { inbound: number; deadLettered: number; acked: number; sent: number };
  cpuCores: {
    ingressRun: Record<string, number> | undefined;
    bareFastifyRun: Record<string, number> | undefined;
  };
  serverCpuMicrosPerRequest: { ingress: number | undefined; bareFastify: number | undefined };
  machine: { cpus: number; cpuModel: string; node: string; kafka: string; loadAverageBefore: number[] };
  config: {
    commit: string;
    uncommittedChanges: boolean | "unknown";
    loadGenerator: { tool: string; connections: number; durationSec: number };
    cpuPinning: { server: string; loadGenerator: string; kafka: string } | "off";
  };
};

function renderMarkdown(r: Report): string {
  const i = r.ingress.measured;
  const b = r.bareFastify.measured;
  const n = (value: number) => value.toLocaleString("en-US");
  const lat = (x: LoadResult) =>
    `${x.latencyMs.p50} / ${x.latencyMs.p90} / ${x.latencyMs.p99} / ${x.latencyMs.max}`;
  const cpu = r.cpuCores.ingressRun;
  const us = r.serverCpuMicrosPerRequest;
  return [
    `# Ingress benchmark, ${r.date}`,
    "",
    r.note ? `${r.note}\n` : "",
    `Signed 1–4 KB WhatsApp webhooks (mean ${n(i.meanBodyBytes)} B, ${r.config.loadGenerator.tool.startsWith("wrk") ? "message ids repeating after 120,000, which ingress here does not drop" : "each a new message id"}), ` +
      `${r.config.loadGenerator.connections} connections, ${r.config.loadGenerator.durationSec} s measured after a warm-up; load from ${r.config.loadGenerator.tool}.`,
    "",
    "| | ingress: 200 after Kafka acks=all | bare Fastify hello-world | target |",
    "| --- | ---: | ---: | --- |",
    `| answers/s (2xx) | ${n(i.okPerSec)} | ${n(b.okPerSec)} | ≥ ${n(TARGETS.acksPerSec)}: **${r.verdict.acksPerSec}** |`,
    `| latency p50 / p90 / p99 / max (ms) | ${lat(i)} | ${lat(b)} | p99 ≤ ${TARGETS.p99Ms}: **${r.verdict.p99}** |`,
    `| non-2xx / errors / timeouts | ${i.non2xx} / ${i.errors} / ${i.timeouts} | ${b.non2xx} / ${b.errors} / ${b.timeouts} | 0: **${r.verdict.noErrors}** |`,
    `| ingress / bare Fastify | ${r.ratio} | 1 | |`,
    `| server CPU per answer (µs) | ${us.ingress ?? "?"} | ${us.bareFastify ?? "?"} | |`,
    `| records in the inbound topic | ${n(r.kafka.inbound)} (acked ${n(r.kafka.acked)}, sent ${n(r.kafka.sent)}, dead-lettered ${r.kafka.deadLettered}) | | every acked event: **${r.verdict.everyAckedEventInKafka}** |`,
    "",
    ...(r.tracing
      ? [
          `Tracing cost: ingress restarted for each row, ${r.tracing.warmupSec} s warm-up + ` +
            `${r.tracing.durationSec} s measured, spans exported as ${r.tracing.exporter} ` +
            `(${r.tracing.sampler}).`,
          "",
          "| tracing | answers/s (2xx) | p99 (ms) | answers/s vs off | p99 vs off | non-2xx / errors | OTLP exports (requests / KB) |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
          ...r.tracing.variants.map(
            (v) =>
              `| ${v.sampling} | ${n(v.okPerSec)} | ${v.p99Ms} | ${v.okPerSecRatio} | ${v.p99Ratio} | ` +
              `${v.non2xx} / ${v.errors} | ${v.exportRequests} / ${n(Math.round(v.exportBytes / 1024))} |`,
          ),
          "",
        ]
      : []),
    cpu
      ? `CPU during the measured ingress run, in cores of ${r.machine.cpus}: ingress ${cpu.ingress}, ` +
        `Kafka ${cpu.kafka ?? "?"}, load generator ${cpu.loadGenerator}, everything else ${cpu.other} ` +
        `(machine ${cpu.machine}).`
      : "",
    "",
    r.config.cpuPinning === "off"
      ? "No CPU pinning."
      : `Server pinned to core ${r.config.cpuPinning.server}; load generator on ${r.config.cpuPinning.loadGenerator}, ` +
        `Kafka ${r.config.cpuPinning.kafka === "not pinned" ? "not pinned" : `on ${r.config.cpuPinning.kafka}`}.`,
    "",
    `Machine: ${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}, Kafka ${r.machine.kafka}, ` +
      `load average before ${r.machine.loadAverageBefore.join(" / ")}. Commit ${r.config.commit}` +
      `${r.config.uncommittedChanges === true ? " with uncommitted changes" : ""}. Full figures and config in the JSON beside this file.`,
    "",
  ]
    .join("\n")
    .replace(/\n{3,}/g, "\n\n");
}

/**
 * Forks the load generator, hands it one run, and returns its result. `onStart` runs once the
 * generator is prepared (wrk's bodies signed), just before the load begins: the measured window.
 */
function load(url: string, seconds: number, bodies: BodyOptions, onStart?: () => void): Promise<LoadResult> {
  const spec: LoadSpec = { url, connections, durationSec: seconds, bodies, ...(wrk ? { wrk } : {}) };
  return new Promise((resolve, reject) => {
    const child = fork(`${root}bench/ingress/load.ts`, { stdio: "inherit" });
    children.add(child);
    if (pinning && child.pid !== undefined) pin(child.pid, OTHER_CPUS);
    let answered = false;
    child.on("message", (message: { ready?: boolean; result?: LoadResult; error?: string }) => {
      if (message.ready) {
        onStart?.();
        child.send("go");
        return;
      }
      answered = true;
      if (message.result) resolve(message.result);
      else reject(new Error(`load generator: ${message.error}`));
    });
    child.on("exit", (code) => {
      children.delete(child);
      if (!answered) reject(new Error(`load generator exited (${code}) without a result`));
    });
    child.send(spec);
  });
}

interface Started {
  name: string;
  child: ChildProcess;
  /** The last lines it printed, for the error message if it dies. */
  tail: string[];
}

function startChild(name: string, argv: string[], env: Record<string, string>): Started {
  // taskset execs the command, so the child's pid is the server's own.
  const [command, commandArgs] = pinning
    ? ["taskset", ["-c", SERVER_CPUS, process.execPath, ...argv]]
    : [process.execPath, argv];
  const child = spawn(command, commandArgs, {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      ...env,
    },
  });
  children.add(child);
  const started: Started = { name, child, tail: [] };
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      for (const line of chunk.split("\n")) {
        if (!line) continue;
        started.tail.push(line);
        if (started.tail.length > 40) started.tail.shift();
        // Ingress logs at warn: anything it says during a benchmark is worth seeing.
        log(`${name}: ${line.slice(0, 500)}`);
      }
    });
  }
  child.on("exit", () => children.delete(child));
  return started;
}

/** SIGTERM, then SIGKILL if it has not exited within 15 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

async function waitUntil(what: string, started: Started, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (started.child.exitCode !== null)
      throw new Error(`${started.name} exited (${started.child.exitCode}):\n${started.tail.join("\n")}`);
    if (await probe().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} not ready within 60 s:\n${started.tail.join("\n")}`);
}

/**
 * Counts the records in `topics`, then deletes every topic of this run (`prefix`): a run writes a
 * few hundred MB, which a broker shared through KAFKA_BROKERS should not keep. `client` is the
 * broker's super user (infra.kafka.client): ingress itself may neither list nor delete topics.
 */
async function countRecords(
  client: Infra["kafka"]["client"],
  topics: string[],
  prefix: string,
): Promise<Record<string, number>> {
  const kafka = createKafka({
    ...client,
    clientId: "bench-counter",
    logger: createLogger({ service: "bench", level: "silent" }),
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const counts: Record<string, number> = {};
    for (const topic of topics) {
      const offsets = await admin.fetchTopicOffsets(topic);
      // A new topic per run, so the high watermarks sum to the records this run wrote.
      counts[topic] = offsets.reduce((sum, partition) => sum + Number(partition.high), 0);
    }
    const ours = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
    await admin.deleteTopics({ topics: ours }).catch((error: unknown) => {
      log(`could not delete this run's topics (${ours.join(", ")}): ${String(error)}`);
    });
    return counts;
  } finally {
    await admin.disconnect();
  }
}

/** The database ingress created its indexes in, dropped like the topics. */
async function dropDatabase(url: string, dbName: string): Promise<void> {
  try {
    const mongo = await connectMongo({ url, dbName, appName: "bench" });
    await mongo.db.dropDatabase();
    await mongo.close();
  } catch (error) {
    log(`could not drop database ${dbName}: ${String(error)}`);
  }
}

type CpuSnapshot = ReturnType<typeof cpuSnapshot>;

/** Names each watched process by its pid alone (a pid undefined: not watched). */
function byPid(pids: Record<string, number | undefined>) {
  return (pid: number) => Object.keys(pids).find((name) => pids[name] === pid);
}

/** A reading from /proc (Linux); undefined elsewhere, and the report then leaves the CPU split out. */
function snapshot(partOf: (pid: number) => string | undefined): CpuSnapshot | undefined {
  return process.platform === "linux" ? cpuSnapshot(partOf) : undefined;
}

/** Cores used by each watched process, the load generator, and everything else, since `before`. */
function cpuUsed(before: CpuSnapshot | undefined, result: LoadResult) {
  if (!before) return undefined;
  const { machine, byPart } = coresSince(before);
  const used: Record<string, number> = { machine, ...byPart };
  let accounted = result.cpuCores;
  for (const cores of Object.values(byPart)) accounted += cores;
  used.loadGenerator = result.cpuCores;
  used.other = round(Math.max(0, machine - accounted));
  return used;
}

/**
 * The pid of the local Kafka broker listening on `broker` (host:port), found through /proc, so the
 * report can say how much CPU Kafka took; undefined when it is not a local process we can see.
 */
function kafkaPid(broker: string | undefined): number | undefined {
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean);
      if (!argv.includes("kafka.Kafka")) continue;
      const properties = readFileSync(argv[argv.length - 1] ?? "", "utf8");
      // The client listener: CLIENT (SASL) on a secured broker, PLAINTEXT on one without.
      const listeners = /^listeners=(.*)$/m.exec(properties)?.[1]?.split(",") ?? [];
      if (listeners.some((l) => l === `CLIENT://${broker}` || l === `PLAINTEXT://${broker}`))
        return Number(entry);
    }
  } catch {
    // Not Linux, or a process that went away while we looked: no Kafka figure.
  }
  return undefined;
}

function perRequest(cores: number | undefined, result: LoadResult): number | undefined {
  return cores === undefined ? undefined : Math.round((cores * 1e6) / result.okPerSec);
}

function wrkVersion(path: string): string {
  // `wrk -v` prints its banner and exits non-zero: read it from the error.
  try {
    return /wrk (\S+)/.exec(execFileSync(path, ["-v"], { encoding: "utf8" }))?.[1] ?? "?";
  } catch (error) {
    return /wrk (\S+)/.exec(String((error as { stdout?: string }).stdout ?? ""))?.[1] ?? "?";
  }
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Moves a running process, every thread of it, to `list` (e.g. "1-3"). */
function pin(pid: number, list: string): void {
  execFileSync("taskset", ["-a", "-p", "-c", list, String(pid)], { stdio: "ignore" });
}

/** git's output, or undefined outside a work tree. */
function git(argv: string[]): string | undefined {
  try {
    return execFileSync("git", argv, {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined;
  }
}

function positive(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new Error(`--${name} wants a positive integer`);
  return number;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

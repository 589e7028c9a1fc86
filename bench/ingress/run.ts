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
 * --tracing-warmup S (default 5), --tracing-rounds N (default 5), --env KEY=VALUE (extra ingress setting, repeatable), --note TEXT,
 * --out DIR (default bench/results), --dry (no files), --pin auto|off (see PINNING),
 * --generator wrk|autocannon (default wrk, installed from Debian's packages when missing).
 */
import { execFileSync, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import { ensureDebianTool } from "@taituri/devenv/tools";
import { deadLetterTopic, topicNames } from "@taituri/kafka";
import { coresSince, cpuSnapshot, machineStealMs, threadCpuMs, threadCpuSince } from "../cpu.ts";
import type { BodyOptions } from "./bodies.ts";
import type { LoadResult, LoadSpec } from "./load.ts";
import {
  ingressEnv as benchIngressEnv,
  Children,
  codeFacts,
  countRecords,
  cpuPinning,
  dropDatabase,
  envPairs,
  formatJson,
  kafkaPid,
  machineFacts,
  pin,
  positive,
  reportedEnv,
  root,
  round,
  runBench,
  speedProbe,
  startOtlpSink,
  stopChild,
  tracingEnv,
  waitUntil,
} from "./servers.ts";

const TARGETS = { acksPerSec: 8000, p99Ms: 10 } as const;

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
    "tracing-rounds": { type: "string", default: "5" },
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
const tracingRounds = positive("tracing-rounds", args["tracing-rounds"]);
if (!Number.isFinite(tracingSec) || tracingSec < 0)
  throw new Error("--tracing-duration wants seconds (0: skip)");
const extraEnv = envPairs(args.env);

// The server under test (ingress, then bare Fastify) on core 0, the rest on the others (PINNING in
// servers.ts).
const pinned = cpuPinning(args.pin);
const pinning = pinned.enabled;
const SERVER_CPUS = pinned.server;
const OTHER_CPUS = pinned.others;

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
const children = new Children(pinned, log);
let infra: Infra | undefined;
await runBench({ log, children, infra: () => infra, main });

async function main(cleanup: () => Promise<void>): Promise<void> {
  const startedAt = new Date();
  const loadBefore = loadavg();
  const stealBefore = machineStealMs();
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
    (240 +
      2 * (warmupSec + durationSec) * 1.5 +
      4 * tracingRounds * (90 + (tracingWarmupSec + tracingSec) * 1.5)) *
      1000,
  );

  const prefix = `bench-${run}.`;
  const topics = topicNames(prefix);
  const port = await freePort();
  // /readyz is on a port of its own, apart from the webhook's.
  const opsPort = await freePort();
  await infra.kafka.authorize(prefix);
  const ingressEnv: Record<string, string> = {
    ...benchIngressEnv({ infra, prefix, dbName: `bench_${run}`, port, opsPort, secret: SECRET }),
    ...extraEnv,
  };

  log(`starting ingress on port ${port}`);
  const ingress = children.start("ingress", ["services/ingress/src/main.ts"], ingressEnv);
  await waitUntil("ingress /readyz", ingress, async () => {
    const response = await fetch(`http://127.0.0.1:${opsPort}/readyz`);
    return response.ok;
  });
  const webhook = `http://127.0.0.1:${port}/webhook`;
  log("ingress: warm-up");
  const ingressWarmup = await load(webhook, warmupSec, bodyOptions("w"));
  log("ingress: measured run");
  const ingressProbe = [speedProbe(pinned)];
  const watched = byPid({ ingress: ingress.child.pid, kafka: kafkaProcess });
  let cpu0: CpuSnapshot | undefined;
  let threads0: Record<string, number> = {};
  const ingressRun = await load(webhook, durationSec, bodyOptions("m"), () => {
    cpu0 = snapshot(watched);
    threads0 = threadCpuMs(ingress.child.pid ?? 0);
  });
  const cpu = cpuUsed(cpu0, ingressRun);
  const ingressThreads = byThread(threads0, ingress.child.pid, perRequest(cpu?.ingress, ingressRun));
  ingressProbe.push(speedProbe(pinned));
  await stopChild(ingress.child);

  const inKafka = await countRecords(
    infra.kafka.client,
    [topics.inbound, deadLetterTopic(topics.inbound)],
    prefix,
    log,
  );
  await dropDatabase(infra.mongo.url, ingressEnv.MONGO_DB ?? "", log);
  const acked = ingressWarmup.ok + ingressRun.ok;
  const sent = ingressWarmup.sent + ingressRun.sent;
  const inbound = inKafka[topics.inbound] ?? 0;
  const deadLettered = inKafka[deadLetterTopic(topics.inbound)] ?? 0;

  const tracing = tracingSec > 0 ? await tracingRuns(ingressEnv, port, opsPort) : undefined;

  log("starting bare Fastify");
  const barePort = await freePort();
  const bare = children.start("bare-fastify", ["bench/ingress/hello.ts"], { BENCH_PORT: String(barePort) });
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
  const bareProbe = [speedProbe(pinned)];
  let bareCpu0: CpuSnapshot | undefined;
  const bareRun = await load(bareUrl, durationSec, bodyOptions("bm"), () => {
    bareCpu0 = snapshot(byPid({ bareFastify: bare.child.pid }));
  });
  const bareCpu = cpuUsed(bareCpu0, bareRun);
  bareProbe.push(speedProbe(pinned));
  await stopChild(bare.child);
  clearTimeout(watchdog);

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
    // Which of ingress's threads took it: a run can cost more CPU while its JavaScript thread's
    // share stays put (bench/README.md, "slow mode").
    ingressCpuMicrosPerAnswerByThread: ingressThreads,
    // The machine's speed on the server's core just before and after each measured run: µs of CPU
    // per HMAC-SHA256 of 2.5 KB (speed-probe.ts). Lower is faster.
    speedProbeMicros: { ingress: ingressProbe, bareFastify: bareProbe },
    machine: machineFacts(infra, loadBefore, stealBefore),
    config: {
      ...codeFacts(),
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
      ingressEnv: reportedEnv(ingressEnv),
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
    formatJson(`${dir}/ingress-${stamp}Z.json`, log);
    log(`recorded ${dir}/ingress-${stamp}Z.json and .md, and ${dir}/latest.md`);
  }
}

interface TracingRun {
  round: number;
  /** Its place in the sequence of runs (0: first). */
  order: number;
  okPerSec: number;
  p99Ms: number;
  /** Ingress's CPU per answered webhook in this run, from /proc (undefined off Linux). */
  cpuMicrosPerAnswer: number | undefined;
  /** The same by thread name (MainThread: JavaScript; V8Worker: compilers and GC helpers). */
  cpuMicrosPerAnswerByThread: Record<string, number>;
  /** µs of CPU per HMAC of 2.5 KB on the server's core just before and after (speed-probe.ts). */
  speedProbeMicros: (number | undefined)[];
  non2xx: number;
  errors: number;
  /** What the OTLP sink received during this run (0 with tracing off). */
  exportRequests: number;
  exportBytes: number;
}

interface TracingVariant {
  sampling: string;
  /** Medians over the rounds. */
  okPerSec: number;
  p99Ms: number;
  cpuMicrosPerAnswer: number | undefined;
  /** Median over the rounds of this variant's figure over the untraced one of the same round. */
  okPerSecRatio: number;
  p99Ratio: number;
  /** Lowest and highest of those per-round throughput ratios. */
  okPerSecRatioRange: [number, number];
  non2xx: number;
  errors: number;
  exportRequests: number;
  exportBytes: number;
  runs: TracingRun[];
}

interface TracingReport {
  warmupSec: number;
  durationSec: number;
  rounds: number;
  exporter: string;
  sampler: string;
  variants: TracingVariant[];
}

/**
 * Ingress untraced, then traced at 10 % and 100 % sampling, each started afresh on the same port
 * and topics with the same warm-up and run length, so the ratios compare like with like. Spans go
 * over OTLP/HTTP to a sink here that answers 200 and discards them: the SDK does all its work
 * (sampling, span creation, batching, protobuf encoding, HTTP export), and no collector is needed.
 *
 * Repeated for --tracing-rounds, the order rotated each round, and each traced run compared with
 * the untraced run of its own round: one round's three runs were seen to differ by a third on this
 * shared machine with nothing changed, more than the effect measured.
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
    // The SDK and its instrumentations on, sampling nothing: what tracing costs before any span is kept.
    { name: "0 %", env: { OTEL_TRACES_SAMPLER_ARG: "0" } },
  ];
  const otlp = await startOtlpSink();
  const sink = otlp.received;
  const runs = new Map<string, TracingRun[]>(SAMPLING.map((s) => [s.name, []]));
  let runCount = 0;
  try {
    for (let round = 0; round < tracingRounds; round++) {
      const order = SAMPLING.map((_, i) => SAMPLING[(i + round) % SAMPLING.length]);
      for (const sampling of order) {
        if (!sampling) continue;
        const env: Record<string, string> = { ...baseEnv, ...tracingEnv(otlp), ...sampling.env };
        log(
          `round ${round + 1}/${tracingRounds}, ingress with tracing ${sampling.name}: start, ${tracingWarmupSec}s warm-up, ${tracingSec}s measured`,
        );
        const ingress = children.start(
          `ingress (tracing ${sampling.name})`,
          ["services/ingress/src/main.ts"],
          env,
        );
        await waitUntil(
          "ingress /readyz",
          ingress,
          async () => (await fetch(`http://127.0.0.1:${opsPort}/readyz`)).ok,
        );
        const webhook = `http://127.0.0.1:${port}/webhook`;
        await load(webhook, tracingWarmupSec, bodyOptions(`tw${runCount}`));
        const probe = [speedProbe(pinned)];
        let before = { ...sink };
        let cpu0: CpuSnapshot | undefined;
        let threads0: Record<string, number> = {};
        const result = await load(webhook, tracingSec, bodyOptions(`tm${runCount}`), () => {
          before = { ...sink };
          cpu0 = snapshot(byPid({ ingress: ingress.child.pid }));
          threads0 = threadCpuMs(ingress.child.pid ?? 0);
        });
        const cpu = cpuUsed(cpu0, result);
        const threads = byThread(threads0, ingress.child.pid, perRequest(cpu?.ingress, result));
        probe.push(speedProbe(pinned));
        runCount += 1;
        await stopChild(ingress.child);
        runs.get(sampling.name)?.push({
          round,
          order: runCount - 1,
          okPerSec: result.okPerSec,
          p99Ms: result.latencyMs.p99,
          cpuMicrosPerAnswer: perRequest(cpu?.ingress, result),
          cpuMicrosPerAnswerByThread: threads,
          speedProbeMicros: probe,
          non2xx: result.non2xx,
          errors: result.errors,
          exportRequests: sink.requests - before.requests,
          exportBytes: sink.bytes - before.bytes,
        });
      }
    }
  } finally {
    await otlp.close();
  }
  const off = runs.get("off") ?? [];
  const offIn = (round: number) => off.find((r) => r.round === round);
  const variants = SAMPLING.map(({ name }): TracingVariant => {
    const mine = runs.get(name) ?? [];
    const ratios = mine.map((r) => r.okPerSec / (offIn(r.round)?.okPerSec ?? Number.NaN));
    const cpu = mine.map((r) => r.cpuMicrosPerAnswer).filter((us): us is number => us !== undefined);
    const sum = (pick: (r: TracingRun) => number) => mine.reduce((total, r) => total + pick(r), 0);
    return {
      sampling: name,
      okPerSec: round(median(mine.map((r) => r.okPerSec))),
      p99Ms: round(median(mine.map((r) => r.p99Ms))),
      cpuMicrosPerAnswer: cpu.length > 0 ? Math.round(median(cpu)) : undefined,
      okPerSecRatio: round(median(ratios)),
      p99Ratio: round(median(mine.map((r) => r.p99Ms / (offIn(r.round)?.p99Ms ?? Number.NaN)))),
      okPerSecRatioRange: [round(Math.min(...ratios)), round(Math.max(...ratios))],
      non2xx: sum((r) => r.non2xx),
      errors: sum((r) => r.errors),
      exportRequests: sum((r) => r.exportRequests),
      exportBytes: sum((r) => r.exportBytes),
      runs: mine,
    };
  });
  if ((variants[2]?.exportRequests ?? 0) === 0)
    throw new Error("tracing at 100 % exported nothing to the sink");
  return {
    warmupSec: tracingWarmupSec,
    durationSec: tracingSec,
    rounds: tracingRounds,
    exporter: "OTLP/HTTP protobuf to a local sink that discards",
    sampler: "parentbased_traceidratio",
    variants,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
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
  ingressCpuMicrosPerAnswerByThread: Record<string, number>;
  speedProbeMicros: { ingress: (number | undefined)[]; bareFastify: (number | undefined)[] };
  machine: {
    cpus: number;
    cpuModel: string;
    node: string;
    kafka: string;
    loadAverageBefore: number[];
    stealPercentDuringRun?: number;
  };
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
    `| server CPU per answer (µs) | ${us.ingress ?? "?"} (${threadsText(r.ingressCpuMicrosPerAnswerByThread)}) | ${us.bareFastify ?? "?"} | |`,
    `| speed probe before / after (µs per HMAC, lower is faster) | ${probeText(r.speedProbeMicros.ingress)} | ${probeText(r.speedProbeMicros.bareFastify)} | |`,
    `| records in the inbound topic | ${n(r.kafka.inbound)} (acked ${n(r.kafka.acked)}, sent ${n(r.kafka.sent)}, dead-lettered ${r.kafka.deadLettered}) | | every acked event: **${r.verdict.everyAckedEventInKafka}** |`,
    "",
    ...(r.tracing
      ? [
          `Tracing cost: ingress restarted for each run, ${r.tracing.warmupSec} s warm-up + ` +
            `${r.tracing.durationSec} s measured, spans exported as ${r.tracing.exporter} ` +
            `(${r.tracing.sampler}); ${r.tracing.rounds} rounds, the order rotated each round. Medians over the rounds; ` +
            "each ratio is to the untraced run of the same round (the range: lowest and highest round).",
          "",
          "| tracing | answers/s (2xx) | p99 (ms) | ingress CPU per answer (µs) | answers/s vs off (range) | p99 vs off | non-2xx / errors | OTLP exports (requests / KB) |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
          ...r.tracing.variants.map(
            (v) =>
              `| ${v.sampling} | ${n(v.okPerSec)} | ${v.p99Ms} | ${v.cpuMicrosPerAnswer ?? "?"} | ` +
              `${v.okPerSecRatio} (${v.okPerSecRatioRange[0]}–${v.okPerSecRatioRange[1]}) | ${v.p99Ratio} | ` +
              `${v.non2xx} / ${v.errors} | ${v.exportRequests} / ${n(Math.round(v.exportBytes / 1024))} |`,
          ),
          "",
          "Each run, in the order run: ingress's CPU per answer by thread (µs; MainThread runs the JavaScript), and the " +
            "machine's speed on ingress's core just before and after (µs of CPU per HMAC-SHA256 of 2.5 KB, bench/ingress/speed-probe.ts; lower is faster).",
          "",
          "| round | tracing | answers/s | p99 (ms) | CPU per answer (µs) | by thread | speed probe (µs) |",
          "| ---: | --- | ---: | ---: | ---: | --- | --- |",
          ...r.tracing.variants
            .flatMap((v) => v.runs.map((run) => ({ sampling: v.sampling, run })))
            .sort((a, b) => a.run.order - b.run.order)
            .map(
              ({ sampling, run }) =>
                `| ${run.round + 1} | ${sampling} | ${n(run.okPerSec)} | ${run.p99Ms} | ${run.cpuMicrosPerAnswer ?? "?"} | ${threadsText(run.cpuMicrosPerAnswerByThread)} | ${probeText(run.speedProbeMicros)} |`,
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
      `load average before ${r.machine.loadAverageBefore.join(" / ")}, CPU stolen by the hypervisor during the run ${r.machine.stealPercentDuringRun ?? "?"} %. Commit ${r.config.commit}` +
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
    children.track(child);
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
      if (!answered) reject(new Error(`load generator exited (${code}) without a result`));
    });
    child.send(spec);
  });
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
 * A process's CPU per answer split by thread name, in µs, since `before` (threadCpuMs): each
 * thread's share of what /proc counted, times `perAnswer`, the whole process's CPU per answer.
 */
function byThread(before: Record<string, number>, pid: number | undefined, perAnswer: number | undefined) {
  const used = threadCpuSince(before, threadCpuMs(pid ?? 0));
  const total = Object.values(used).reduce((sum, ms) => sum + ms, 0);
  if (perAnswer === undefined || total === 0) return {};
  return Object.fromEntries(
    Object.entries(used)
      .sort(([, a], [, b]) => b - a)
      .map(([name, ms]) => [name, Math.round((perAnswer * ms) / total)]),
  );
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

/** "MainThread 61, V8Worker 9, …": a by-thread split, largest first. */
function threadsText(byName: Record<string, number> | undefined): string {
  return Object.entries(byName ?? {})
    .map(([name, us]) => `${name} ${us}`)
    .join(", ");
}

/** "18.1 / 18.4": a run's speed probes, before and after. */
function probeText(values: (number | undefined)[]): string {
  return values.map((v) => v ?? "?").join(" / ");
}

/**
 * The lone webhook (`node bench/ingress/lone.ts`; `npm run bench` runs it after the ingress
 * benchmark): Meta at a quiet hour, one signed webhook at a time, against the floor of a bare
 * kafkajs acks=all send to the same broker measured in the same run. Target (issue #27): on an idle
 * machine, ingress's POST /webhook (200 only once Kafka has the events, acks=all) answers with p50 ≤
 * 1 ms above the bare send's and p99 ≤ 2× the bare send's.
 *
 * Starts Kafka and the MongoDB-wire server with startInfra, warms the broker up, starts a Graph
 * API stand-in and, for each row, a warm-up then `--count` operations one after another:
 *  1. bare kafkajs: the kafkajs package alone (acks=-1, not idempotent) sending one ~2.5 KB record
 *     keyed like a conversation to a topic with the inbound topic's partition count, each awaited
 *     (bench/ingress/bare-send.ts, in a process on the core ingress gets);
 *  2. the real ingress service (services/ingress/src/main.ts, child processes) as `npm start` and
 *     the chart run it: the webhook (INGRESS_ROLE=webhook) on the server's core, the outbound
 *     dispatcher and status tracker (INGRESS_ROLE=dispatcher) in a process of its own on the other
 *     cores, as another pod would be: signed status-only webhooks, then signed 1–4 KB text-message
 *     webhooks, POSTed in turn on one keep-alive connection, each timed until its 200; during the
 *     text rows outbound messages go to the outbound topic at `--outbound-rate` a second, which the
 *     dispatcher claims, sends to the Graph API stand-in and records, as it would the replies of a
 *     conversation;
 *  3. the same with INGRESS_ROLE=all: the dispatcher and tracker in the webhook's process;
 *  4. the webhook and dispatcher apart again, with tracing at parent-based `--tracing-ratio`,
 *     exporting OTLP to a sink that discards (`--tracing-ratio 0` skips these rows);
 *  5. bare kafkajs again, to show how far the broker drifted over the run.
 * Each ingress row also reports ingress's CPU per request (/proc), its own mean time to answer
 * (webhook_ack_seconds), its event loop's delay and its GC time (its /metrics, read around the
 * row); each ingress, its CPU and event loop with no request (`--idle` seconds). Checks that every acknowledged webhook's events are in the inbound topic and nothing is
 * dead-lettered. Writes bench/results/lone-<date>.json and .md. A missed target is a finding,
 * printed as MISS and recorded: the exit code is non-zero only when the benchmark itself broke.
 *
 * Options: --count N (measured operations per row, default 2000), --warmup N (per row, default
 * 1000), --broker-warmup S (default 20), --idle S (default 5), --outbound-rate N (outbound
 * messages a second during the text rows, default 20; 0: none), --tracing-ratio R (default 0.1;
 * 0 skips the traced rows), --env KEY=VALUE (extra ingress setting, repeatable), --note TEXT,
 * --out DIR (default bench/results), --dry (no files), --pin auto|off (PINNING in servers.ts:
 * ingress and the bare sender on core 0, Kafka and this process on the others).
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { baseSchema } from "@taituri/config";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import {
  createKafka,
  deadLetterTopic,
  encodeRecord,
  ensureTopics,
  Records,
  topicNames,
  topicSpecs,
} from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { outbound } from "@taituri/proto";
import { startFakeGraphApi } from "@taituri/testing/harness";
import { signWebhook, statusWebhook } from "@taituri/testing/whatsapp";
import type { Admin, Producer } from "kafkajs";
import { Client } from "undici";
import { cpuSince, cpuSnapshot, machineStealMs } from "../cpu.ts";
import type { BareSendResult, BareSendSpec } from "./bare-send.ts";
import { type BodyOptions, type SignedBody, webhookBodies } from "./bodies.ts";
import {
  Children,
  codeFacts,
  countRecords,
  cpuPinning,
  dropDatabase,
  envPairs,
  ingressEnv,
  kafkaPid,
  machineFacts,
  mongoStackPids,
  pin,
  positive,
  reportedEnv,
  root,
  round,
  runBench,
  startOtlpSink,
  stopChild,
  tracingEnv,
  waitUntil,
} from "./servers.ts";

const TARGETS = { p50AboveBareMs: 1, p99TimesBare: 2 } as const;
/** About an encoded inbound event of a 1–4 KB webhook. */
const BARE_VALUE_BYTES = 2500;
/** Senders, so conversation keys, so partitions: as many as the ingress benchmark's templates. */
const SHOPPERS = 256;
const PHONE_NUMBER_ID = "106540352242922";
const STATUSES = ["sent", "delivered", "read"] as const;
/** Outbound messages produced so far in this run, over every row. */
let outboundSeq = 0;

const { values: args } = parseArgs({
  options: {
    count: { type: "string", default: "2000" },
    // A webhook at a quiet hour meets a process that has been up for hours, its code optimised.
    // After 200 requests a fresh ingress still answered ~0.5 ms slower at p50 than after 1,000
    // (its JIT still compiling the path, on the same core).
    warmup: { type: "string", default: "1000" },
    // A freshly started broker spends its first tens of seconds compiling (bench/README.md): the
    // floor would be measured slower than the rows after it.
    "broker-warmup": { type: "string", default: "20" },
    idle: { type: "string", default: "5" },
    env: { type: "string", multiple: true, default: [] },
    "outbound-rate": { type: "string", default: "20" },
    "tracing-ratio": { type: "string", default: "0.1" },
    note: { type: "string", default: "" },
    dry: { type: "boolean", default: false },
    out: { type: "string", default: "bench/results" },
    pin: { type: "string", default: "auto" },
  },
});
const count = positive("count", args.count);
const warmup = positive("warmup", args.warmup);
const brokerWarmupSec = positive("broker-warmup", args["broker-warmup"]);
const idleSec = positive("idle", args.idle);
const outboundRate = Number(args["outbound-rate"]);
if (!Number.isFinite(outboundRate) || outboundRate < 0 || outboundRate > 1000)
  throw new Error("--outbound-rate wants messages a second, 0 to 1000 (0: none)");
const tracingRatio = Number(args["tracing-ratio"]);
if (!Number.isFinite(tracingRatio) || tracingRatio < 0 || tracingRatio > 1)
  throw new Error("--tracing-ratio wants a ratio from 0 to 1 (0: skip the traced rows)");
if (args.pin !== "auto" && args.pin !== "off") throw new Error("--pin wants auto or off");

const extraEnv = envPairs(args.env);
const pinned = cpuPinning(args.pin);
const run = randomUUID().slice(0, 8);
const SECRET = `bench-secret-${run}`;
const log = (line: string) => process.stderr.write(`[bench:lone] ${line}\n`);
const children = new Children(pinned, log);
let infra: Infra | undefined;
await runBench({ log, children, infra: () => infra, main });

/**
 * A layout of ingress under test: `apart`, the webhook and a dispatcher process; `all`, one process
 * with both (INGRESS_ROLE=all); `alone`, the webhook with no dispatcher running (statuses and
 * outbound messages left unread): the webhook's own path with no work downstream of it on the
 * machine, as when the dispatcher and the databases are on other nodes. Traced or not.
 */
interface IngressConfig {
  name: string;
  layout: "apart" | "all" | "alone";
  tracing: boolean;
}

interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** What happened inside ingress during a row, from /proc and its /metrics. */
interface IngressSide {
  /** CPU of the ingress process per measured request, in µs (/proc ticks: ±10 ms over the row). */
  cpuMicrosPerRequest: number;
  /** Its own mean time from request to answer (webhook_ack_seconds), in ms. */
  answerMeanMs: number;
  /** Event loop delay over the row (prom-client's monitor, 10 ms resolution), in ms. */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  /** Time in garbage collection during the row, by kind, in ms. */
  gcMs: Record<string, number>;
  /** Outbound messages the dispatcher sent to the Graph API stand-in during the row. */
  outboundSent: number;
}

/** Ingress with no request: CPU in ms per second (/proc) and event loop delay (its /metrics). */
interface IdleIngress {
  cpuMsPerSec: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
}

interface Row {
  name: string;
  kind: "bare" | "status" | "text";
  /** The ingress configuration, for an ingress row. */
  ingress?: string;
  count: number;
  latencyMs: LatencyMs;
  /** Answers other than 200 (ingress) or failed sends (bare): not in the latencies. */
  failures: number;
  ingressSide?: IngressSide;
  /** Against the first bare row; absent for the bare rows. */
  verdict?: { p50: "PASS" | "MISS"; p99: "PASS" | "MISS" };
}

async function main(cleanup: () => Promise<void>): Promise<void> {
  const startedAt = new Date();
  const loadBefore = loadavg();
  const stealBefore = machineStealMs();
  log(`run ${run}: ${warmup} warm-up + ${count} measured sequential operations per row`);
  infra = await startInfra({ log: (line) => log(`infra: ${line}`) });
  const kafkaProcess = kafkaPid(infra.kafka.brokers[0]);
  if (pinned.enabled) {
    // Only a broker this run started is moved; one named by KAFKA_BROKERS belongs to someone else.
    if (infra.mode === "local" && kafkaProcess !== undefined) pin(kafkaProcess, pinned.others);
    // So is the MongoDB-wire server and its PostgreSQL (backends forked later inherit the
    // postmaster's cores): the dispatcher's status records otherwise land on the webhook's core, a
    // contention a deployment's separate database does not have.
    if (infra.mode === "local") for (const pid of mongoStackPids(infra.mongo.url)) pin(pid, pinned.others);
    // This process times the requests, produces the outbound messages and answers as the Graph
    // API: never on the server's core. Its forks inherit this; the bare sender is moved back.
    pin(process.pid, pinned.others);
  }
  const ingressConfigs: IngressConfig[] = [
    { name: "webhook and dispatcher apart (default)", layout: "apart", tracing: false },
    { name: "INGRESS_ROLE=all (dispatcher in process)", layout: "all", tracing: false },
    ...(tracingRatio > 0
      ? [
          {
            name: `webhook and dispatcher apart, traced ${tracingRatio * 100} %`,
            layout: "apart" as const,
            tracing: true,
          },
        ]
      : []),
    // Last: the groups it leaves unread would otherwise start the next layout with a backlog.
    { name: "webhook alone (nothing reads its events)", layout: "alone", tracing: false },
  ];
  // Per row, generously: a send of 50 ms; per server, a minute to start and stop.
  const rows = 2 + ingressConfigs.length * 2;
  const watchdog = setTimeout(
    () => {
      log("benchmark exceeded its time budget: stopping");
      void cleanup().finally(() => process.exit(1));
    },
    (300 + ingressConfigs.length * 60 + (rows * (warmup + count) * 50) / 1000) * 1000,
  );

  const prefix = `bench-lone-${run}.`;
  const topics = topicNames(prefix);
  const bareTopic = `${prefix}bare.v1`;
  const dbName = `bench_lone_${run}`;
  await infra.kafka.authorize(prefix);
  const kafka = createKafka({
    ...infra.kafka.client,
    clientId: "bench-lone",
    logger: createLogger({ service: "bench", level: "silent" }),
  });
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer();
  await producer.connect();
  const partitions = baseSchema.shape.KAFKA_PARTITIONS.parse(undefined);
  // The inbound topic's spec (partitions, retention) under another name, made before ingress makes
  // its own topics.
  const [inboundSpec] = topicSpecs(topics, partitions);
  if (!inboundSpec) throw new Error("no inbound topic spec");
  await ensureTopics(admin, [{ ...inboundSpec, name: bareTopic }]);
  log(`broker warm-up: ${brokerWarmupSec} s of sends`);
  await warmBroker(producer, bareTopic, brokerWarmupSec);

  let outboundSent = 0;
  const graph = await startFakeGraphApi({
    record: false,
    onSend: () => {
      outboundSent += 1;
    },
  });
  const sink = ingressConfigs.some((c) => c.tracing) ? await startOtlpSink() : undefined;
  const port = await freePort();
  const opsPort = await freePort();
  const baseEnv = ingressEnv({ infra, prefix, dbName, port, opsPort, secret: SECRET });
  const dispatcherOpsPort = await freePort();
  const envOf = (config: IngressConfig): Record<string, string> => ({
    ...baseEnv,
    INGRESS_ROLE: config.layout === "all" ? "all" : "webhook",
    WHATSAPP_ACCESS_TOKEN: "bench-token",
    WHATSAPP_API_URL: graph.url,
    ...(config.tracing && sink ? { ...tracingEnv(sink), OTEL_TRACES_SAMPLER_ARG: String(tracingRatio) } : {}),
    ...extraEnv,
  });

  const results: Row[] = [];
  const idle: Record<string, IdleIngress> = {};
  let acked = 0;
  try {
    const bareSpec: BareSendSpec = {
      brokers: infra.kafka.client.brokers,
      ...(infra.kafka.client.sasl ? { sasl: infra.kafka.client.sasl } : {}),
      topic: bareTopic,
      warmup,
      count,
      valueBytes: BARE_VALUE_BYTES,
      keys: SHOPPERS,
    };
    log("bare kafkajs send");
    results.push(await bareRow("bare kafkajs send, acks=all", bareSpec));

    const bodies = {
      text: webhookBodies(bodyOptions("t")),
      status: statusBodies(SECRET, `${run}s`),
    };
    for (const config of ingressConfigs) {
      log(`ingress, ${config.name}: starting`);
      const ingress = children.start(
        `ingress (${config.name})`,
        ["services/ingress/src/main.ts"],
        envOf(config),
      );
      // The dispatcher of the default layout: ingress's code in its other role, off the webhook's core.
      const dispatcher =
        config.layout === "apart"
          ? children.start(
              `dispatcher (${config.name})`,
              ["services/ingress/src/main.ts"],
              { ...envOf(config), INGRESS_ROLE: "dispatcher", INGRESS_OPS_PORT: String(dispatcherOpsPort) },
              { core: "others" },
            )
          : undefined;
      await waitUntil("ingress /readyz", ingress, async () => (await fetch(`${opsUrl()}/readyz`)).ok);
      if (dispatcher)
        await waitUntil(
          "dispatcher /readyz",
          dispatcher,
          async () => (await fetch(`http://127.0.0.1:${dispatcherOpsPort}/readyz`)).ok,
        );
      // A dispatcher's groups still joining would rebalance in the middle of a row.
      if (config.layout !== "alone")
        await waitForGroups(admin, [`${prefix}ingress-dispatcher`, `${prefix}ingress-statuses`]);
      idle[config.name] = await idleIngress(ingress.child);
      const client = new Client(`http://127.0.0.1:${port}`, { pipelining: 1, keepAliveTimeout: 60_000 });
      try {
        for (const kind of ["status", "text"] as const) {
          log(`ingress, ${config.name}: ${kind} webhooks`);
          const outgoing =
            kind === "text" && outboundRate > 0
              ? startOutbound(producer, topics.outbound, outboundRate)
              : undefined;
          try {
            const row = await webhookRow(client, bodies[kind], ingress.child, () => outboundSent);
            acked += row.acked;
            results.push({ name: `ingress, ${kind} webhooks`, kind, ingress: config.name, ...row.row });
          } finally {
            await outgoing?.stop();
          }
        }
      } finally {
        await client.close();
        await stopChild(ingress.child);
        if (dispatcher) await stopChild(dispatcher.child);
      }
    }

    log("bare kafkajs send, again");
    results.push(await bareRow("bare kafkajs send, acks=all, again at the end", bareSpec));
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    await graph.close();
    await sink?.close();
  }
  clearTimeout(watchdog);

  const inKafka = await countRecords(
    infra.kafka.client,
    [topics.inbound, deadLetterTopic(topics.inbound), bareTopic],
    prefix,
    log,
  );
  await dropDatabase(infra.mongo.url, dbName, log);
  const inbound = inKafka[topics.inbound] ?? 0;
  const deadLettered = inKafka[deadLetterTopic(topics.inbound)] ?? 0;

  const floor = results[0];
  if (!floor) throw new Error("no bare row");
  for (const row of results) {
    if (row.kind === "bare") continue;
    row.verdict = {
      p50: row.latencyMs.p50 <= floor.latencyMs.p50 + TARGETS.p50AboveBareMs ? "PASS" : "MISS",
      p99: row.latencyMs.p99 <= floor.latencyMs.p99 * TARGETS.p99TimesBare ? "PASS" : "MISS",
    };
  }
  const failures = results.reduce((sum, row) => sum + row.failures, 0);
  const report = {
    date: startedAt.toISOString(),
    run,
    note: args.note,
    targets: TARGETS,
    rows: results,
    idle,
    verdict: {
      everyAckedEventInKafka: inbound === acked && deadLettered === 0 ? "PASS" : "MISS",
      noErrors: failures === 0 ? "PASS" : "MISS",
    },
    kafka: { inbound, acked, deadLettered, bareTopic: inKafka[bareTopic] ?? 0 },
    machine: machineFacts(infra, loadBefore, stealBefore),
    config: {
      ...codeFacts(),
      warmup,
      count,
      brokerWarmupSec,
      idleSec,
      outboundRatePerSec: outboundRate,
      tracingRatio,
      client: "undici Client, one keep-alive connection, one request at a time",
      bareSend: `kafkajs ${kafkajsVersion()} producer, acks=-1, not idempotent, ${BARE_VALUE_BYTES} B values, ${SHOPPERS} keys, ${partitions} partitions, as the broker's super user`,
      textBodies: { ...bodyOptions("t"), secret: "(per run)", runId: "(per run)" },
      kafkaPartitions: partitions,
      cpuPinning: pinned.enabled
        ? {
            server: pinned.server,
            benchmark: pinned.others,
            kafka: infra.mode === "local" && kafkaProcess !== undefined ? pinned.others : "not pinned",
            // The dispatcher and the MongoDB-wire stack: beside the webhook, as other pods would be.
            dispatcherAndMongo: infra.mode === "local" ? pinned.others : "dispatcher only",
          }
        : ("off" as const),
      ingressEnv: reportedEnv(envOf({ name: "default", layout: "apart", tracing: false })),
    },
  };
  await infra.stop();

  const markdown = renderMarkdown(report);
  process.stdout.write(`\n${markdown}\n`);
  if (!args.dry) {
    const dir = resolve(root, args.out);
    mkdirSync(dir, { recursive: true });
    const stamp = startedAt.toISOString().slice(0, 16).replace(":", "");
    writeFileSync(`${dir}/lone-${stamp}Z.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(`${dir}/lone-${stamp}Z.md`, markdown);
    log(`recorded ${dir}/lone-${stamp}Z.json and .md`);
  }

  function opsUrl(): string {
    return `http://127.0.0.1:${opsPort}`;
  }

  /** What ingress spends doing nothing: its CPU and event loop over `--idle` seconds without a request. */
  async function idleIngress(ingress: ChildProcess): Promise<IdleIngress> {
    const pid = ingress.pid;
    await scrape(opsUrl());
    const before = cpuSnapshot((p) => (p === pid ? "ingress" : undefined));
    await new Promise((done) => setTimeout(done, idleSec * 1000));
    const cpu = cpuSince(before, 1);
    const after = await scrape(opsUrl());
    return {
      cpuMsPerSec: round((cpu.msPerMessageByPart.ingress ?? 0) / idleSec),
      eventLoopDelayMs: after.eventLoopDelayMs,
    };
  }

  /** One ingress row: warm-up, then `count` webhooks one after another, and ingress's side of it. */
  async function webhookRow(
    client: Client,
    next: () => SignedBody,
    ingress: ChildProcess,
    sentSoFar: () => number,
  ): Promise<{ row: Omit<Row, "name" | "kind" | "ingress">; acked: number }> {
    let ok = 0;
    let failures = 0;
    for (let i = 0; i < warmup; i++) {
      const answer = await post(client, next());
      if (answer.ok) ok += 1;
    }
    const pid = ingress.pid;
    const before = {
      metrics: await scrape(opsUrl()),
      cpu: cpuSnapshot((p) => (p === pid ? "ingress" : undefined)),
    };
    const sent0 = sentSoFar();
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) {
      const answer = await post(client, next());
      if (answer.ok) {
        ok += 1;
        latencies.push(answer.ms);
      } else failures += 1;
    }
    const outboundSentInRow = sentSoFar() - sent0;
    const cpu = cpuSince(before.cpu, latencies.length);
    const after = await scrape(opsUrl());
    const gcMs: Record<string, number> = {};
    for (const [kind, seconds] of Object.entries(after.gcSeconds))
      gcMs[kind] = round((seconds - (before.metrics.gcSeconds[kind] ?? 0)) * 1000);
    const answered = after.ack.count - before.metrics.ack.count;
    return {
      acked: ok,
      row: {
        count: latencies.length,
        latencyMs: stats(latencies),
        failures,
        ingressSide: {
          cpuMicrosPerRequest: Math.round((cpu.msPerMessageByPart.ingress ?? 0) * 1000),
          answerMeanMs: round(((after.ack.sum - before.metrics.ack.sum) * 1000) / Math.max(1, answered)),
          eventLoopDelayMs: after.eventLoopDelayMs,
          gcMs,
          outboundSent: outboundSentInRow,
        },
      },
    };
  }
}

/** One signed webhook POSTed, timed from the request's start to its answer's last byte. */
async function post(client: Client, { body, signature }: SignedBody): Promise<{ ok: boolean; ms: number }> {
  const started = performance.now();
  const answer = await client.request({
    path: "/webhook",
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signature },
    body,
  });
  await answer.body.dump();
  const ms = performance.now() - started;
  if (answer.statusCode !== 200) log(`webhook answered ${answer.statusCode}`);
  return { ok: answer.statusCode === 200, ms };
}

/** The bare sender in its own process on the server's core; its latencies as a row. */
function bareRow(name: string, spec: BareSendSpec): Promise<Row> {
  return new Promise((resolveRow, reject) => {
    const child = fork(`${root}bench/ingress/bare-send.ts`, { stdio: "inherit" });
    children.track(child);
    if (pinned.enabled && child.pid !== undefined) pin(child.pid, pinned.server);
    let answered = false;
    child.on("message", (message: { result?: BareSendResult; error?: string }) => {
      answered = true;
      if (!message.result) return reject(new Error(`bare send: ${message.error}`));
      const { latenciesMs, acknowledged } = message.result;
      resolveRow({
        name,
        kind: "bare",
        count: latenciesMs.length,
        latencyMs: stats(latenciesMs),
        failures: spec.warmup + spec.count - acknowledged,
      });
    });
    child.on("exit", (code) => {
      if (!answered) reject(new Error(`bare send exited (${code}) without a result`));
    });
    child.send(spec);
  });
}

function bodyOptions(phase: string): BodyOptions {
  return { secret: SECRET, runId: `${run}${phase}`, minBytes: 1024, maxBytes: 4096, templates: SHOPPERS };
}

/**
 * Signed status-only webhooks, as Meta sends for each message we sent: one status each, of a
 * message id never used before, from the same senders as the text webhooks.
 */
function statusBodies(secret: string, runId: string): () => SignedBody {
  let seq = 0;
  return () => {
    seq += 1;
    const body = JSON.stringify(
      statusWebhook(`wamid.${runId}.${seq}`, STATUSES[seq % STATUSES.length] ?? "sent", {
        waId: shopper(seq),
        phoneNumberId: PHONE_NUMBER_ID,
        timestamp: 1_767_225_600 + seq,
      }),
    );
    return { body, signature: signWebhook(body, secret) };
  };
}

function shopper(seq: number): string {
  return `1555${String(1_000_000 + (seq % SHOPPERS)).slice(1)}`;
}

/**
 * Outbound text messages to the outbound topic, `perSecond` of them evenly spaced, as the
 * conversation produces replies: a dispatcher in ingress claims each in MongoDB, sends it to the
 * Graph API stand-in and records it. Within the 24-hour window, so none is refused.
 */
function startOutbound(producer: Producer, topic: string, perSecond: number): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> = Promise.resolve();
  const tick = () => {
    if (stopped) return;
    outboundSeq += 1;
    const to = shopper(outboundSeq);
    const message = outbound.OutboundMessage.fromPartial({
      // Never one of an earlier row's: the dispatcher would take it for a redelivery and not send it.
      id: `bench-${run}-out-${outboundSeq}`,
      conversationId: `${PHONE_NUMBER_ID}:${to}`,
      phoneNumberId: PHONE_NUMBER_ID,
      to,
      lastInboundAt: new Date(),
      content: { $case: "text", value: { body: "Here is your design: a blue mug with her name on it 🎁" } },
    });
    inFlight = producer.send({
      topic,
      acks: -1,
      messages: [{ key: message.conversationId, ...encodeRecord(Records.outboundMessage, message) }],
    });
    inFlight.catch((error: unknown) => log(`outbound produce failed: ${String(error)}`));
    timer = setTimeout(tick, 1000 / perSecond);
  };
  tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight.catch(() => {});
    },
  };
}

/** Sequential sends, four at a time, for `seconds`: the broker's JIT compiles its produce path. */
async function warmBroker(producer: Producer, topic: string, seconds: number): Promise<void> {
  const value = Buffer.alloc(BARE_VALUE_BYTES, 0x61);
  const deadline = Date.now() + seconds * 1000;
  const lane = async (lane: number) => {
    for (let i = 0; Date.now() < deadline; i++)
      await producer.send({ topic, acks: -1, messages: [{ key: shopper(i * 4 + lane), value }] });
  };
  await Promise.all([0, 1, 2, 3].map(lane));
}

/** Until each consumer group has its members and is stable (60 s at most). */
async function waitForGroups(admin: Admin, groupIds: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { groups } = await admin.describeGroups(groupIds);
    if (
      groups.length === groupIds.length &&
      groups.every((g) => g.state === "Stable" && g.members.length > 0)
    )
      return;
    if (Date.now() > deadline)
      throw new Error(
        `consumer groups not stable within 60 s: ${groups.map((g) => `${g.groupId} ${g.state}`).join(", ")}`,
      );
    await new Promise((done) => setTimeout(done, 250));
  }
}

interface Scraped {
  ack: { sum: number; count: number };
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  gcSeconds: Record<string, number>;
}

/**
 * Ingress's answer time, event loop delay and GC from its /metrics. prom-client's event loop
 * figures cover the time since the previous scrape, so a scrape after a row gives that row's.
 */
async function scrape(opsUrl: string): Promise<Scraped> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
  const gcSeconds: Record<string, number> = {};
  for (const match of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*kind="(\w+)"[^}]*\} (\S+)$/gm))
    gcSeconds[match[1] ?? "?"] = Number(match[2]);
  const ms = (seconds: number) => round(seconds * 1000);
  return {
    ack: {
      sum: value(/^webhook_ack_seconds_sum(?:\{[^}]*\})? (\S+)$/m),
      count: value(/^webhook_ack_seconds_count(?:\{[^}]*\})? (\S+)$/m),
    },
    eventLoopDelayMs: {
      p50: ms(value(/^nodejs_eventloop_lag_p50_seconds(?:\{[^}]*\})? (\S+)$/m)),
      p99: ms(value(/^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? (\S+)$/m)),
      max: ms(value(/^nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? (\S+)$/m)),
    },
    gcSeconds,
  };
}

function stats(samples: number[]): LatencyMs {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  const at = (q: number) => round(sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] ?? Number.NaN);
  let sum = 0;
  for (const value of sorted) sum += value;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), mean: round(sum / Math.max(1, n)) };
}

function kafkajsVersion(): string {
  return (createRequire(import.meta.url)("kafkajs/package.json") as { version: string }).version;
}

type Report = {
  date: string;
  note: string;
  rows: Row[];
  idle: Record<string, IdleIngress>;
  verdict: Record<string, string>;
  kafka: { inbound: number; acked: number; deadLettered: number };
  machine: ReturnType<typeof machineFacts>;
  config: ReturnType<typeof codeFacts> & {
    warmup: number;
    count: number;
    brokerWarmupSec: number;
    idleSec: number;
    outboundRatePerSec: number;
    client: string;
    bareSend: string;
    cpuPinning: { server: string; benchmark: string; kafka: string; dispatcherAndMongo: string } | "off";
  };
};

function renderMarkdown(r: Report): string {
  const floor = r.rows[0];
  const lat = (l: LatencyMs) => `${l.p50} / ${l.p90} / ${l.p99} / ${l.max}`;
  const target = (row: Row) =>
    row.verdict
      ? `p50 ≤ ${floor ? round(floor.latencyMs.p50 + TARGETS.p50AboveBareMs) : "?"}: **${row.verdict.p50}**; ` +
        `p99 ≤ ${floor ? round(floor.latencyMs.p99 * TARGETS.p99TimesBare) : "?"}: **${row.verdict.p99}**`
      : "";
  const inside = (row: Row) => {
    const side = row.ingressSide;
    if (!side) return "";
    const gc = Object.entries(side.gcMs)
      .filter(([, ms]) => ms > 0)
      .map(([kind, ms]) => `${kind} ${ms}`)
      .join(", ");
    return (
      `${side.cpuMicrosPerRequest} | ${side.answerMeanMs} | ` +
      `${side.eventLoopDelayMs.p99} / ${side.eventLoopDelayMs.max} | ${gc || "0"} | ${side.outboundSent}`
    );
  };
  return [
    `# Lone webhook benchmark, ${r.date}`,
    "",
    r.note ? `${r.note}\n` : "",
    `One operation at a time, after ${r.config.brokerWarmupSec} s warming the broker: ${r.config.warmup} warm-up, then ${r.config.count} measured per row. ` +
      `Webhooks POSTed to ingress (200 only after Kafka acks=all) over ${r.config.client}; ` +
      `the floor: ${r.config.bareSend}. Targets (issue #27) against the first row: p50 ≤ ${TARGETS.p50AboveBareMs} ms above it, ` +
      `p99 ≤ ${TARGETS.p99TimesBare}× its p99. During the text rows ${r.config.outboundRatePerSec} outbound messages/s go to the outbound topic.`,
    "",
    "| row | ingress | latency p50 / p90 / p99 / max (ms) | failures | target | ingress CPU/request (µs) | ingress's own mean answer (ms) | event loop delay p99 / max (ms) | GC (ms) | outbound sent |",
    "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: |",
    ...r.rows.map(
      (row) =>
        `| ${row.name} | ${row.ingress ?? ""} | ${lat(row.latencyMs)} | ${row.failures} | ${target(row)} | ${inside(row) || " | | | | "} |`,
    ),
    "",
    `Ingress with no request (${r.config.idleSec} s after start): ` +
      Object.entries(r.idle)
        .map(
          ([name, i]) =>
            `${name}: ${i.cpuMsPerSec} ms CPU/s, event loop delay p99 ${i.eventLoopDelayMs.p99} ms, max ${i.eventLoopDelayMs.max} ms`,
        )
        .join("; ") +
      ".",
    "",
    `Inbound topic: ${r.kafka.inbound} records for ${r.kafka.acked} acknowledged webhooks, ${r.kafka.deadLettered} dead-lettered: ` +
      `every acked event in Kafka: **${r.verdict.everyAckedEventInKafka}**; no failures: **${r.verdict.noErrors}**.`,
    "",
    r.config.cpuPinning === "off"
      ? "No CPU pinning."
      : `Ingress and the bare sender pinned to core ${r.config.cpuPinning.server}; this benchmark (client, Graph API stand-in, outbound producer) on ${r.config.cpuPinning.benchmark}, ` +
        `Kafka ${r.config.cpuPinning.kafka === "not pinned" ? "not pinned" : `on ${r.config.cpuPinning.kafka}`}; ` +
        `${r.config.cpuPinning.dispatcherAndMongo === "dispatcher only" ? `the dispatcher on ${r.config.cpuPinning.benchmark}, the MongoDB-wire server not pinned` : `the dispatcher, FerretDB and PostgreSQL on ${r.config.cpuPinning.dispatcherAndMongo}`}.`,
    "",
    `Machine: ${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}, Kafka ${r.machine.kafka}, ` +
      `load average before ${r.machine.loadAverageBefore.join(" / ")}, CPU stolen by the hypervisor during the run ${r.machine.stealPercentDuringRun ?? "?"} %. Commit ${r.config.commit}` +
      `${r.config.uncommittedChanges === true ? " with uncommitted changes" : ""}. Full figures and config in the JSON beside this file.`,
    "",
  ]
    .join("\n")
    .replace(/\n{3,}/g, "\n\n");
}

/**
 * What the ingress benchmarks (run.ts, lone.ts) share: the servers they start as child processes
 * (pinned to a core of their own), ingress's settings, the OTLP sink the tracing rows export to,
 * the clean-up of a run's topics and database, and the machine facts every report gives.
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { arch, cpus, release, totalmem } from "node:os";
import { freePort, type Infra, KAFKA_VERSION } from "@taituri/devenv";
import { createKafka } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { connectMongo } from "@taituri/mongo";
import { machineStealMs } from "../cpu.ts";

export const root = new URL("../..", import.meta.url).pathname;

export type Log = (line: string) => void;

/**
 * PINNING: on Linux with two or more cores, the server under test gets core 0 to itself and
 * everything else the benchmark starts (load generator, Kafka) shares the others. The load
 * generator and the broker then never take the server's core, so servers are compared on the same
 * footing and the server's latency is its own. `--pin off` lets the OS schedule freely.
 */
export interface Pinning {
  enabled: boolean;
  /** taskset's CPU list for the server under test. */
  server: string;
  /** taskset's CPU list for everything else. */
  others: string;
}

export function cpuPinning(option: string): Pinning {
  return {
    enabled: option !== "off" && process.platform === "linux" && cpus().length >= 2 && hasTaskset(),
    server: "0",
    others: cpus().length === 2 ? "1" : `1-${cpus().length - 1}`,
  };
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * µs of CPU per HMAC-SHA256 of 2.5 KB on the server's core (bench/ingress/speed-probe.ts): how fast
 * the machine is right now. Undefined when the probe cannot run.
 */
export function speedProbe(pinning: Pinning): number | undefined {
  const probe = `${root}bench/ingress/speed-probe.ts`;
  const [command, args] = pinning.enabled
    ? ["taskset", ["-c", pinning.server, process.execPath, probe]]
    : [process.execPath, [probe]];
  try {
    const value = Number(execFileSync(command, args, { encoding: "utf8", timeout: 30_000 }).trim());
    return Number.isFinite(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Moves a running process, every thread of it, to `list` (e.g. "1-3"). */
export function pin(pid: number, list: string): void {
  execFileSync("taskset", ["-a", "-p", "-c", list, String(pid)], { stdio: "ignore" });
}

export interface Started {
  name: string;
  child: ChildProcess;
  /** The last lines it printed, for the error message if it dies. */
  tail: string[];
}

/** Every process a run started, so that any failure, signal or timeout stops all of it. */
export class Children {
  private readonly all = new Set<ChildProcess>();
  private readonly pinning: Pinning;
  private readonly log: Log;

  constructor(pinning: Pinning, log: Log) {
    this.pinning = pinning;
    this.log = log;
  }

  /** A process started elsewhere (a fork), stopped with the others. */
  track(child: ChildProcess): void {
    this.all.add(child);
    child.on("exit", () => this.all.delete(child));
  }

  /**
   * A server under test: `node <argv>` in the repository, on the server's core when pinning (or on
   * the others, with `core: "others"`: a process beside the one measured, as another pod would be).
   */
  start(
    name: string,
    argv: string[],
    env: Record<string, string>,
    { core = "server" }: { core?: "server" | "others" } = {},
  ): Started {
    // taskset execs the command, so the child's pid is the server's own.
    const cores = core === "server" ? this.pinning.server : this.pinning.others;
    const [command, commandArgs] = this.pinning.enabled
      ? ["taskset", ["-c", cores, process.execPath, ...argv]]
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
    this.track(child);
    const started: Started = { name, child, tail: [] };
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        for (const line of chunk.split("\n")) {
          if (!line) continue;
          started.tail.push(line);
          if (started.tail.length > 40) started.tail.shift();
          // Servers log at warn: anything they say during a benchmark is worth seeing.
          this.log(`${name}: ${line.slice(0, 500)}`);
        }
      });
    }
    return started;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.all].map((child) => stopChild(child)));
  }
}

/** SIGTERM, then SIGKILL if it has not exited within 15 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

export async function waitUntil(
  what: string,
  started: Started,
  probe: () => Promise<boolean>,
): Promise<void> {
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
 * Ingress's settings for a benchmark: logged in to Kafka as itself (infra.kafka.settings), allowed
 * only what packages/kafka/data/access.json gives it under `prefix`, untraced, quiet, and with no
 * event dropped as a retry of an earlier one. The webhook's role alone; a caller that wants the
 * dispatcher starts it, or sets INGRESS_ROLE=all.
 */
export function ingressEnv(options: {
  infra: Infra;
  prefix: string;
  dbName: string;
  port: number;
  opsPort: number;
  secret: string;
}): Record<string, string> {
  const { infra } = options;
  return {
    ...infra.kafka.settings("ingress"),
    MONGO_URL: infra.mongo.url,
    MONGO_DB: options.dbName,
    REDIS_URL: infra.redis.url,
    KAFKA_TOPIC_PREFIX: options.prefix,
    INGRESS_HOST: "127.0.0.1",
    INGRESS_PORT: String(options.port),
    INGRESS_OPS_PORT: String(options.opsPort),
    WHATSAPP_APP_SECRET: options.secret,
    WHATSAPP_VERIFY_TOKEN: "bench-verify",
    // The webhook alone, as the chart and `npm start` run it; a dispatcher is a process of its own.
    INGRESS_ROLE: "webhook",
    LOG_LEVEL: "warn",
    OTEL_SDK_DISABLED: "true",
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    // Every request is really produced: none is dropped as a retry of an earlier one.
    WEBHOOK_RECENT_IDS: "0",
  };
}

/** Ingress's settings as a report shows them: no secret of the run. */
export function reportedEnv(env: Record<string, string>): Record<string, string> {
  return {
    ...env,
    WHATSAPP_APP_SECRET: "(per run)",
    ...(env.KAFKA_OAUTH_CLIENT_SECRET ? { KAFKA_OAUTH_CLIENT_SECRET: "(per run)" } : {}),
  };
}

/**
 * Settings that make ingress trace with parent-based ratio sampling and export its spans to `sink`
 * (startOtlpSink); the ratio is the caller's OTEL_TRACES_SAMPLER_ARG.
 */
export function tracingEnv(sink: OtlpSink): Record<string, string> {
  return {
    OTEL_SDK_DISABLED: "false",
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
  };
}

export interface OtlpSink {
  url: string;
  /** What it has received so far. */
  received: { requests: number; bytes: number };
  close(): Promise<void>;
}

/**
 * An OTLP/HTTP endpoint that answers 200 and discards: a traced service does all its work
 * (sampling, span creation, batching, protobuf encoding, HTTP export), and no collector is needed.
 */
export async function startOtlpSink(): Promise<OtlpSink> {
  const received = { requests: 0, bytes: 0 };
  const server = createHttpServer((request, response) => {
    let bytes = 0;
    request.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    request.on("end", () => {
      if (request.method === "POST" && request.url === "/v1/traces") {
        received.requests += 1;
        received.bytes += bytes;
        response.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      } else response.writeHead(404).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Counts the records in `topics`, then deletes every topic of this run (`prefix`): a run writes a
 * few hundred MB, which a broker shared through KAFKA_BROKERS should not keep. `client` is the
 * broker's super user (infra.kafka.client): ingress itself may neither list nor delete topics.
 */
export async function countRecords(
  client: Infra["kafka"]["client"],
  topics: string[],
  prefix: string,
  log: Log,
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
export async function dropDatabase(url: string, dbName: string, log: Log): Promise<void> {
  try {
    const mongo = await connectMongo({ url, dbName, appName: "bench" });
    await mongo.db.dropDatabase();
    await mongo.close();
  } catch (error) {
    log(`could not drop database ${dbName}: ${String(error)}`);
  }
}

/**
 * The pid of the local Kafka broker listening on `broker` (host:port), found through /proc, so the
 * report can say how much CPU Kafka took; undefined when it is not a local process we can see.
 */
/**
 * The MongoDB-wire server behind `mongoUrl` and its PostgreSQL: FerretDB listening on the URL's
 * address, the postmaster on the port FerretDB's --postgresql-url names, and every backend forked
 * from it. Empty when they cannot be found (not Linux, another kind of server).
 */
export function mongoStackPids(mongoUrl: string): number[] {
  const processes: { pid: number; ppid: number; argv: string[] }[] = [];
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean);
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        processes.push({ pid: Number(entry), ppid, argv });
      } catch {
        // Gone while we looked.
      }
    }
  } catch {
    return [];
  }
  const address = new URL(mongoUrl).host;
  const ferret = processes.find(
    (p) => p.argv[0]?.endsWith("/ferretdb") && p.argv.includes(`--listen-addr=${address}`),
  );
  if (!ferret) return [];
  const pgUrl = ferret.argv.find((a) => a.startsWith("--postgresql-url="))?.slice("--postgresql-url=".length);
  const pgPort = pgUrl ? new URL(pgUrl).port : "";
  const postmaster = processes.find(
    (p) =>
      p.argv[0]?.endsWith("/postgres") &&
      p.argv.includes("-p") &&
      p.argv[p.argv.indexOf("-p") + 1] === pgPort,
  );
  if (!postmaster) return [ferret.pid];
  return [
    ferret.pid,
    postmaster.pid,
    ...processes.filter((p) => p.ppid === postmaster.pid).map((p) => p.pid),
  ];
}

export function kafkaPid(broker: string | undefined): number | undefined {
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

/** The machine a run measured on, as every report gives it. */
export function machineFacts(
  infra: Infra,
  loadAverageBefore: number[],
  stealBefore?: { steal: number; total: number },
) {
  const steal = stealBefore && process.platform === "linux" ? machineStealMs() : undefined;
  return {
    // Share of the machine's CPU time the hypervisor gave to others during the run (/proc/stat).
    stealPercentDuringRun:
      steal && stealBefore
        ? round((100 * (steal.steal - stealBefore.steal)) / Math.max(1, steal.total - stealBefore.total))
        : undefined,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()} ${arch()}`,
    node: process.version,
    kafka: infra.mode === "env" ? "external (KAFKA_BROKERS)" : `${KAFKA_VERSION} (${infra.mode})`,
    loadAverageBefore: loadAverageBefore.map(round),
  };
}

/** The code a run measured: the commit, and whether the work tree had changes on top of it. */
export function codeFacts() {
  const status = git(["status", "--porcelain"]);
  return {
    commit: git(["rev-parse", "--short", "HEAD"]) ?? "unknown",
    uncommittedChanges: status === undefined ? ("unknown" as const) : status !== "",
  };
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

/** Rewrites a recorded JSON file in the repository's format, so `npm run check` passes with it committed. */
export function formatJson(path: string, log: Log): void {
  try {
    execFileSync(`${root}node_modules/.bin/biome`, ["format", "--write", path], { stdio: "ignore" });
  } catch {
    log("could not format the JSON with biome; it is valid JSON all the same");
  }
}

export function positive(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new Error(`--${name} wants a positive integer`);
  return number;
}

export function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The KEY=VALUE pairs of a repeatable `--env` option. */
export function envPairs(pairs: string[]): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const at = pair.indexOf("=");
      if (at < 1) throw new Error(`--env wants KEY=VALUE, got ${pair}`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}

/**
 * Runs a benchmark's `main` so that whatever ends it (a failure, SIGINT, SIGTERM) stops every child
 * it started and the servers (`infra()`, once started), and a failure exits 1, a signal 130.
 */
export async function runBench(options: {
  log: (line: string) => void;
  children: Children;
  infra: () => { stop(): Promise<void> } | undefined;
  /** Given the clean-up, for a watchdog of its own. */
  main: (cleanup: () => Promise<void>) => Promise<void>;
}): Promise<void> {
  const { log } = options;
  const cleanup = async () => {
    await options.children.stopAll();
    await options.infra()?.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await options.main(cleanup);
  } catch (error) {
    log(`benchmark broke: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await cleanup().catch((e: unknown) => log(`cleanup failed: ${String(e)}`));
    process.exit(1);
  }
}

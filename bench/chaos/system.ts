/**
 * The system the chaos suite runs: servers of its own that it may stop (Kafka, the MongoDB-wire
 * server with its PostgreSQL, Redis), recording fakes of the outside world (Meta's Graph API, the
 * image provider) behind proxies that can slow down or refuse, and every service as a child
 * process, so a SIGKILL is a real one and a restart reads its state back from the servers.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import {
  freePort,
  type Infra,
  type RestartableKafka,
  type RestartableMongo,
  type RestartableRedis,
  startInfra,
  startRestartableKafka,
  startRestartableMongo,
  startRestartableRedis,
} from "@taituri/devenv";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";
import { type FakeOpenAI, startFakeOpenAI } from "@taituri/testing/openai";
import type { ServiceName } from "./faults.ts";

const root = new URL("../..", import.meta.url).pathname;
export const APP_SECRET = "chaos-app-secret";
export const PAYMENT_SECRET = "chaos-payment-local-secret";
const OIDC_SECRET = "chaos-generation-oidc";

/**
 * An HTTP proxy in front of a recording fake: it can hold each answer back (`delayMs`) or drop
 * connections without an answer (`refuse`), which the fakes themselves cannot.
 */
export interface FaultyProxy {
  url: string;
  delayMs: number;
  refuse: boolean;
  close(): Promise<void>;
}

export async function startFaultyProxy(target: string): Promise<FaultyProxy> {
  const proxy: FaultyProxy = { url: "", delayMs: 0, refuse: false, close: async () => {} };
  const server: Server = createServer((request, response) => {
    if (proxy.refuse) {
      request.socket.destroy();
      return;
    }
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      if (proxy.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, proxy.delayMs));
      const headers = Object.fromEntries(
        Object.entries(request.headers).filter(
          (e): e is [string, string] =>
            typeof e[1] === "string" && !["host", "content-length", "connection"].includes(e[0]),
        ),
      );
      const body = chunks.length ? Buffer.concat(chunks) : undefined;
      const answer = await fetch(`${target}${request.url}`, {
        method: request.method ?? "GET",
        headers,
        ...(body && request.method !== "GET" ? { body } : {}),
      });
      const bytes = Buffer.from(await answer.arrayBuffer());
      response.writeHead(answer.status, {
        "content-type": answer.headers.get("content-type") ?? "text/plain",
      });
      response.end(bytes);
    })().catch(() => request.socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

/** A service's run: its process, and every exit we did not cause. */
interface Child {
  process: ChildProcess;
  killedByUs: boolean;
}

export interface SystemEvents {
  /** A service exited on its own (not a planned kill): the run restarts it, as Kubernetes would. */
  onCrash(name: ServiceName, code: number | null, signal: string | null): void;
}

export class ChaosSystem {
  kafka!: RestartableKafka;
  mongo!: RestartableMongo;
  redis!: RestartableRedis;
  infra!: Infra;
  issuer!: LocalIssuer;
  graph!: FakeGraphApi;
  openai!: FakeOpenAI;
  graphProxy!: FaultyProxy;
  imagesProxy!: FaultyProxy;
  readonly prefix: string;
  readonly dbName: string;
  readonly logDir: string;
  readonly ports = {} as Record<ServiceName, number>;
  /** Where each serves /readyz and /metrics: ingress's and payment's apart from their public ports. */
  readonly opsPorts = {} as Record<ServiceName, number>;
  #grpcPort = 0;
  #children = new Map<ServiceName, Child>();
  #env: Record<ServiceName, NodeJS.ProcessEnv> = {} as Record<ServiceName, NodeJS.ProcessEnv>;
  #stopping = false;
  readonly #events: SystemEvents;
  readonly #log: (line: string) => void;

  readonly #onSend: ((phoneNumberId: string, body: unknown, wamid: string) => void) | undefined;

  constructor(options: {
    run: string;
    logDir: string;
    events: SystemEvents;
    log: (line: string) => void;
    /** Each send the recording Graph API took (Meta's statuses for it start here). */
    onSend?: (phoneNumberId: string, body: unknown, wamid: string) => void;
  }) {
    this.#onSend = options.onSend;
    this.prefix = `chaos-${options.run}.`;
    this.dbName = `chaos_${options.run}`;
    this.logDir = options.logDir;
    this.#events = options.events;
    this.#log = options.log;
  }

  get ingressUrl(): string {
    return `http://127.0.0.1:${this.ports.ingress}`;
  }

  get paymentUrl(): string {
    return `http://127.0.0.1:${this.ports.payment}`;
  }

  async start(): Promise<void> {
    mkdirSync(this.logDir, { recursive: true });
    const log = (line: string) => this.#log(`[infra] ${line}`);
    // Servers of the run's own, never the shared ones named by KAFKA_BROKERS / MONGO_URL / REDIS_URL:
    // someone else's servers are not ours to stop.
    [this.kafka, this.mongo, this.redis] = await Promise.all([
      startRestartableKafka({ log }),
      startRestartableMongo({ log }),
      startRestartableRedis({ log }),
    ]);
    const env = { ...process.env };
    delete env.TAITURI_KAFKA_AUTH;
    this.infra = await startInfra({
      log,
      env: {
        ...env,
        KAFKA_BROKERS: this.kafka.brokers.join(","),
        MONGO_URL: this.mongo.url,
        REDIS_URL: this.redis.url,
      },
    });
    this.issuer = await startLocalIssuer({ clients: { generation: OIDC_SECRET } });
    this.graph = await startFakeGraphApi({
      onSend: (phoneNumberId, body, wamid) => this.#onSend?.(phoneNumberId, body, wamid),
    });
    this.openai = await startFakeOpenAI();
    this.graphProxy = await startFaultyProxy(this.graph.url);
    this.imagesProxy = await startFaultyProxy(this.openai.baseURL.replace(/\/v1\/?$/, ""));
    // freePort asks the kernel for an ephemeral port and lets it go: two calls may get the same one.
    const taken = new Set<number>();
    const distinct = async () => {
      for (;;) {
        const port = await freePort();
        if (!taken.has(port)) {
          taken.add(port);
          return port;
        }
      }
    };
    for (const name of ["ingress", "conversation", "generation", "payment", "limiter"] as const)
      this.ports[name] = await distinct();
    for (const name of ["conversation", "generation", "limiter"] as const)
      this.opsPorts[name] = this.ports[name];
    for (const name of ["ingress", "payment"] as const) this.opsPorts[name] = await distinct();
    this.#grpcPort = await distinct();
    const rules = join(this.logDir, "limits.yaml");
    // The shop's and shoppers' limits are not under test here: high enough for every shopper's
    // round, with the limiter still called for each (so its outages and Redis's count).
    writeFileSync(
      rules,
      `limits:
  shopper-daily: { scope: shopper, limit: 20, period: 1d }
  shop-daily-cost: { scope: shop, limit: 100000000, period: 1d, unit: cost }
ruleSets:
  generation-round: { limits: [shopper-daily, shop-daily-cost], onRedisError: deny, maxCost: 500 }
`,
    );
    const common = {
      MONGO_URL: this.mongo.url,
      MONGO_DB: this.dbName,
      REDIS_URL: this.redis.url,
      KAFKA_TOPIC_PREFIX: this.prefix,
      KAFKA_PARTITIONS: "3",
      LOG_FORMAT: "json",
      LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? "info",
      OTEL_SDK_DISABLED: "true",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      OTEL_LOGS_EXPORTER: "none",
      DEPLOYMENT_ENVIRONMENT: "local",
    };
    const base = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" };
    const kafka = (name: "ingress" | "conversation" | "generation" | "payment") =>
      this.infra.kafka.settings(name);
    this.#env = {
      limiter: {
        ...base,
        ...common,
        LIMITER_PORT: String(this.ports.limiter),
        LIMITER_GRPC_PORT: String(this.#grpcPort),
        LIMITER_RULES_FILE: rules,
        LIMITER_KEY_PREFIX: this.prefix,
        OIDC_ISSUER_URL: this.issuer.url,
      },
      generation: {
        ...base,
        ...common,
        ...kafka("generation"),
        GENERATION_PORT: String(this.ports.generation),
        LIMITER_URL: `127.0.0.1:${this.#grpcPort}`,
        OIDC_ISSUER_URL: this.issuer.url,
        OIDC_CLIENT_SECRET: OIDC_SECRET,
        IMAGE_PROVIDER: "openai",
        OPENAI_BASE_URL: `${this.imagesProxy.url}/v1`,
        OPENAI_API_KEY: "chaos-openai-key",
        OPENAI_TIMEOUT_MS: "20000",
      },
      conversation: {
        ...base,
        ...common,
        ...kafka("conversation"),
        CONVERSATION_PORT: String(this.ports.conversation),
        TIMER_POLL_MS: "500",
      },
      payment: {
        ...base,
        ...common,
        ...kafka("payment"),
        PAYMENT_PORT: String(this.ports.payment),
        PAYMENT_OPS_PORT: String(this.opsPorts.payment),
        PAYMENT_PUBLIC_URL: this.paymentUrl,
        PAYMENT_SWEEP_MS: "500",
        PAYMENT_LOCAL_WEBHOOK_SECRET: PAYMENT_SECRET,
        OIDC_ISSUER_URL: this.issuer.url,
      },
      ingress: {
        ...base,
        ...common,
        ...kafka("ingress"),
        INGRESS_PORT: String(this.ports.ingress),
        INGRESS_OPS_PORT: String(this.opsPorts.ingress),
        WHATSAPP_APP_SECRET: APP_SECRET,
        WHATSAPP_VERIFY_TOKEN: "chaos-verify",
        WHATSAPP_ACCESS_TOKEN: "chaos-token",
        WHATSAPP_API_URL: this.graphProxy.url,
      },
    };
    // From the back of the journey to its front, as npm start does.
    for (const name of ["limiter", "generation", "conversation", "payment", "ingress"] as const)
      this.spawn(name);
    for (const name of ["limiter", "generation", "conversation", "payment", "ingress"] as const)
      await this.waitReady(name, 180_000);
  }

  spawn(name: ServiceName): void {
    const child = spawn(process.execPath, [`services/${name}/src/main.ts`], {
      cwd: root,
      env: this.#env[name],
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out = createWriteStream(join(this.logDir, `${name}.log`), { flags: "a" });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    const entry: Child = { process: child, killedByUs: false };
    this.#children.set(name, entry);
    child.on("exit", (code, signal) => {
      if (this.#stopping || entry.killedByUs) return;
      this.#events.onCrash(name, code, signal);
      // Kubernetes would start it again; so does the run, after a moment.
      setTimeout(() => {
        if (!this.#stopping && this.#children.get(name) === entry) this.spawn(name);
      }, 1_000);
    });
  }

  /** SIGKILL, then a new process at once: state must come back from the servers. */
  kill(name: ServiceName): void {
    const entry = this.#children.get(name);
    if (entry) {
      entry.killedByUs = true;
      entry.process.kill("SIGKILL");
    }
    this.spawn(name);
  }

  async ready(name: ServiceName): Promise<boolean> {
    return fetch(`http://127.0.0.1:${this.opsPorts[name]}/readyz`, {
      signal: AbortSignal.timeout(2_000),
    }).then(
      (r) => r.ok,
      () => false,
    );
  }

  async waitReady(name: ServiceName, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.ready(name))) {
      if (Date.now() > deadline)
        throw new Error(`${name} not ready after ${timeoutMs / 1000} s (logs: ${this.logDir})`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      [...this.#children.values()].map(
        ({ process: child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
            child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
    await this.graphProxy?.close();
    await this.imagesProxy?.close();
    await this.graph?.close();
    await this.openai?.close();
    await this.issuer?.close();
    await this.infra?.stop();
    if (this.kafka && !this.kafka.isRunning()) await this.kafka.start().catch(() => {});
    await Promise.all([this.kafka?.close(), this.mongo?.close(), this.redis?.close()]);
  }
}

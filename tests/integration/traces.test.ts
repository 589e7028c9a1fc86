import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { freePort, type Infra, type Jaeger, startInfra, startJaeger } from "@taituri/devenv";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { eventually, type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";
import { Shopper } from "./support/shopper.ts";

/**
 * One shopper's journey through the five services, each its own process exporting spans over
 * OTLP to a real Jaeger v2, then read back through Jaeger's query API (/api/traces, the JSON API
 * its UI uses): the "confirm" tap's trace runs ingress → conversation → generation → limiter
 * (gRPC) → generation → conversation → dispatcher → Graph API, and the "buy" tap's trace runs
 * through payment; every Kafka hop is a PRODUCER span with the CONSUMER span as its child.
 */
const root = new URL("../../", import.meta.url).pathname;
// Starts with a letter: an all-digit id would look like a phone number to the privacy redaction,
// and the topic names in span names and attributes would come back pseudonymised.
const run = `r${randomUUID().slice(0, 7)}`;
const SECRET = "traces-app-secret";
const GENERATION_SECRET = "traces-generation-secret";
const PHONE_NUMBER_ID = "106540352242922";
const topic = (name: string) => `traces-${run}.${name}`;
const SERVICES = ["limiter", "conversation", "generation", "payment", "ingress"] as const;
type ServiceName = (typeof SERVICES)[number];

let infra: Infra;
let jaeger: Jaeger;
let issuer: LocalIssuer;
let graph: FakeGraphApi;
const ports: Record<string, number> = {};
const children: ChildProcess[] = [];
const logs: Record<string, string> = {};

before(async () => {
  infra = await startInfra();
  jaeger = await startJaeger();
  issuer = await startLocalIssuer({ clients: { generation: GENERATION_SECRET } });
  graph = await startFakeGraphApi();
  for (const name of [...SERVICES, "limiter_grpc", "payment_ops", "ingress_ops"])
    ports[name] = await freePort();
  // Not the run's Kafka master secret (TAITURI_KAFKA_AUTH): each service gets its own login below.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith("OTEL_") && name !== "TAITURI_KAFKA_AUTH",
    ),
  );
  await infra.kafka.authorize(`traces-${run}.`);
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    MONGO_URL: infra.mongo.url,
    REDIS_URL: infra.redis.url,
    MONGO_DB: `it_traces_${run}`,
    KAFKA_TOPIC_PREFIX: `traces-${run}.`,
    KAFKA_PARTITIONS: "3",
    OIDC_ISSUER_URL: issuer.url,
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint,
    OTEL_TRACES_SAMPLER: "always_on",
    OTEL_BSP_SCHEDULE_DELAY: "200",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
  };
  const own: Record<ServiceName, NodeJS.ProcessEnv> = {
    limiter: {
      LIMITER_PORT: String(ports.limiter),
      LIMITER_GRPC_PORT: String(ports.limiter_grpc),
      LIMITER_KEY_PREFIX: `traces-${run}`,
    },
    conversation: { CONVERSATION_PORT: String(ports.conversation) },
    generation: {
      GENERATION_PORT: String(ports.generation),
      LIMITER_URL: `127.0.0.1:${ports.limiter_grpc}`,
      OIDC_CLIENT_SECRET: GENERATION_SECRET,
      LOCAL_IMAGE_SIZE: "128",
    },
    payment: {
      PAYMENT_PORT: String(ports.payment),
      PAYMENT_OPS_PORT: String(ports.payment_ops),
      PAYMENT_PUBLIC_URL: `http://127.0.0.1:${ports.payment}`,
    },
    ingress: {
      INGRESS_PORT: String(ports.ingress),
      INGRESS_OPS_PORT: String(ports.ingress_ops),
      WHATSAPP_APP_SECRET: SECRET,
      WHATSAPP_VERIFY_TOKEN: "verify",
      WHATSAPP_ACCESS_TOKEN: "token",
      WHATSAPP_API_URL: graph.url,
    },
  };
  for (const name of SERVICES) {
    const child = spawn(process.execPath, [`services/${name}/src/main.ts`], {
      cwd: root,
      // Each Kafka client logs in as its own service; the limiter has none.
      env: { ...env, ...(name === "limiter" ? {} : infra.kafka.settings(name)), ...own[name] },
      stdio: ["ignore", "pipe", "pipe"],
    });
    logs[name] = "";
    for (const stream of [child.stdout, child.stderr])
      stream?.on("data", (chunk: Buffer) => {
        logs[name] = (logs[name] ?? "").concat(chunk.toString()).slice(-20_000);
      });
    children.push(child);
  }
  for (const name of SERVICES) {
    await eventually(
      `${name} ready`,
      () =>
        // Ingress's and payment's ops endpoints are on a port of their own.
        fetch(`http://127.0.0.1:${ports[`${name}_ops`] ?? ports[name]}/readyz`).then(
          (response) => response.ok,
          () => false,
        ),
      90_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n--- ${name} output ---\n${logs[name]}`);
    });
  }
});

after(async () => {
  await Promise.all(
    children.map(
      (child) =>
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
  await graph?.close();
  await issuer?.close();
  await jaeger?.stop();
  await infra?.stop();
});

/** A span as Jaeger's /api/traces returns it, with its service name resolved. */
interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[];
  processID: string;
  tags: { key: string; value: unknown }[];
  service: string;
}
interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
}

const tag = (span: JaegerSpan, key: string) => span.tags.find((t) => t.key === key)?.value;
const kind = (span: JaegerSpan) => tag(span, "span.kind");
const parentId = (span: JaegerSpan) => span.references.find((r) => r.refType === "CHILD_OF")?.spanID;
const describeSpan = (span: JaegerSpan) => `${span.service}: ${span.operationName} (${String(kind(span))})`;

/** Every trace Jaeger holds in which `service` took part. */
async function tracesOf(service: string): Promise<JaegerTrace[]> {
  const url = `${jaeger.queryUrl}/api/traces?service=${service}&lookback=1h&limit=1000`;
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url} answered ${response.status}`);
  const body = (await response.json()) as {
    data: (Omit<JaegerTrace, "spans"> & {
      spans: Omit<JaegerSpan, "service">[];
      processes: Record<string, { serviceName: string }>;
    })[];
  };
  return body.data.map((t) => ({
    traceID: t.traceID,
    spans: t.spans.map((s) => ({ ...s, service: t.processes[s.processID]?.serviceName ?? "?" })),
  }));
}

/** The spans of one trace, indexed for the assertions below. */
class TraceView {
  readonly trace: JaegerTrace;
  readonly byId: Map<string, JaegerSpan>;
  constructor(trace: JaegerTrace) {
    this.trace = trace;
    this.byId = new Map(trace.spans.map((s) => [s.spanID, s]));
  }
  get services(): Set<string> {
    return new Set(this.trace.spans.map((s) => s.service));
  }
  parent(span: JaegerSpan): JaegerSpan | undefined {
    const id = parentId(span);
    return id ? this.byId.get(id) : undefined;
  }
  ancestors(span: JaegerSpan): JaegerSpan[] {
    const out: JaegerSpan[] = [];
    for (let p = this.parent(span); p; p = this.parent(p)) out.push(p);
    return out;
  }
  /** PRODUCER → CONSUMER pairs on `destination`, from `from` to `to`, the consumer the producer's child. */
  kafkaPairs(destination: string, from: ServiceName, to: ServiceName): [JaegerSpan, JaegerSpan][] {
    const pairs: [JaegerSpan, JaegerSpan][] = [];
    for (const consumer of this.trace.spans) {
      if (consumer.service !== to || kind(consumer) !== "consumer") continue;
      if (tag(consumer, "messaging.destination.name") !== destination) continue;
      const producer = this.parent(consumer);
      if (
        producer?.service === from &&
        kind(producer) === "producer" &&
        tag(producer, "messaging.destination.name") === destination
      )
        pairs.push([producer, consumer]);
    }
    return pairs;
  }
  /** A readable outline, for failure messages. */
  outline(): string {
    const lines: string[] = [];
    const children = new Map<string | undefined, JaegerSpan[]>();
    for (const span of this.trace.spans) {
      const key = this.byId.has(parentId(span) ?? "") ? parentId(span) : undefined;
      children.set(key, [...(children.get(key) ?? []), span]);
    }
    const walk = (id: string | undefined, depth: number) => {
      for (const span of children.get(id) ?? []) {
        lines.push(`${"  ".repeat(depth)}${describeSpan(span)}`);
        walk(span.spanID, depth + 1);
      }
    };
    walk(undefined, 0);
    return lines.join("\n");
  }
}

/**
 * Whether every span's parent has reached Jaeger. A span is exported when it ends, so a parent still
 * open (the dispatcher's CONSUMER span while it uploads an image) arrives after its children; until
 * then they would look like extra roots.
 */
const settled = (view: TraceView) =>
  view.trace.spans.every((s) => parentId(s) === undefined || view.byId.has(parentId(s) ?? ""));

/** The one trace that satisfies `complete`, polled until Jaeger has all of its spans. */
async function findTrace(
  what: string,
  service: ServiceName,
  complete: (view: TraceView) => boolean,
): Promise<TraceView> {
  let seen: TraceView[] = [];
  try {
    return await eventually(
      what,
      async () => {
        seen = (await tracesOf(service)).map((t) => new TraceView(t));
        return seen.find((view) => complete(view) && settled(view));
      },
      60_000,
    );
  } catch (error) {
    const outlines = seen.map((v) => `--- trace ${v.trace.traceID}\n${v.outline()}`).join("\n");
    throw new Error(`${(error as Error).message}\n${outlines}`);
  }
}

/** Asserts the trace is one tree: a single root (the webhook's server span), every other span's parent present. */
function assertOneTree(view: TraceView): JaegerSpan {
  const roots = view.trace.spans.filter((s) => !view.byId.has(parentId(s) ?? ""));
  assert.equal(
    roots.length,
    1,
    `expected one root, got:\n${roots.map(describeSpan).join("\n")}\n${view.outline()}`,
  );
  const [rootSpan] = roots;
  assert.ok(rootSpan);
  assert.equal(rootSpan.service, "ingress");
  assert.equal(kind(rootSpan), "server");
  assert.match(
    String(tag(rootSpan, "url.path") ?? tag(rootSpan, "http.target") ?? rootSpan.operationName),
    /webhook|POST/,
  );
  return rootSpan;
}

/** The Graph API call: an HTTP client span in ingress, under the dispatcher's CONSUMER span of the outbound topic. */
function assertGraphApiCall(view: TraceView): void {
  const calls = view.trace.spans.filter(
    (s) =>
      s.service === "ingress" &&
      kind(s) === "client" &&
      (String(tag(s, "url.full") ?? "").startsWith(graph.url) ||
        tag(s, "server.address") === new URL(graph.url).host),
  );
  assert.ok(calls.length > 0, `no Graph API client span:\n${view.outline()}`);
  for (const call of calls) {
    const dispatcher = view
      .ancestors(call)
      .find(
        (s) =>
          s.service === "ingress" &&
          kind(s) === "consumer" &&
          tag(s, "messaging.destination.name") === topic("outbound.v1"),
      );
    assert.ok(dispatcher, `Graph API call ${call.operationName} is not under the dispatcher's span`);
  }
}

describe("one message, one trace in Jaeger", { timeout: 6 * 60_000 }, () => {
  let ana: Shopper;
  let designs: Awaited<ReturnType<Shopper["next"]>> = [];
  /** The confirm tap's trace: the one that delivered the designs. */
  let roundTraceId = "";

  test("the shopper gets their designs from the real generation and limiter services", async () => {
    ana = new Shopper({
      waId: `4477${run.replace(/\D/g, "0").slice(0, 6)}`,
      phoneNumberId: PHONE_NUMBER_ID,
      webhook: () => `http://127.0.0.1:${ports.ingress}/webhook`,
      secret: SECRET,
      graph,
      wamidPrefix: run,
      timeoutMs: 60_000,
    });
    designs = await ana.toDesigns();
    assert.equal(designs[3]?.type, "list");
  });

  test("the confirm tap's trace: ingress → conversation → generation → limiter → conversation → Graph API", async () => {
    const view = await findTrace(
      "the generation round's trace, complete",
      "generation",
      (v) =>
        ["ingress", "conversation", "generation", "limiter"].every((s) => v.services.has(s)) &&
        v.kafkaPairs(topic("outbound.v1"), "conversation", "ingress").length >= 2 &&
        v.kafkaPairs(topic("generation.results.v1"), "generation", "conversation").length >= 1 &&
        v.trace.spans.some((s) => s.service === "ingress" && kind(s) === "client"),
    );
    assertOneTree(view);
    roundTraceId = view.trace.traceID;
    // Every Kafka hop of the round, each a PRODUCER span with the CONSUMER span as its child.
    for (const [destination, from, to] of [
      ["inbound.v1", "ingress", "conversation"],
      ["generation.requests.v1", "conversation", "generation"],
      ["generation.results.v1", "generation", "conversation"],
      ["outbound.v1", "conversation", "ingress"],
    ] as const) {
      const pairs = view.kafkaPairs(topic(destination), from, to);
      assert.ok(pairs.length > 0, `no ${from} → ${to} pair on ${destination}:\n${view.outline()}`);
      for (const [producer, consumer] of pairs) {
        assert.equal(tag(producer, "messaging.system"), "kafka");
        assert.equal(tag(consumer, "messaging.system"), "kafka");
        assert.notEqual(tag(consumer, "messaging.destination.partition.id"), undefined);
        assert.notEqual(tag(consumer, "messaging.kafka.offset"), undefined);
        // Both sides say where the message is and which it is (by the pseudonym of its id).
        assert.equal(
          tag(producer, "messaging.destination.partition.id"),
          tag(consumer, "messaging.destination.partition.id"),
          `${destination}: partition`,
        );
        assert.match(String(tag(consumer, "messaging.message.id")), /^p[0-9a-f]{16}$/, `${destination}: id`);
        if (tag(producer, "messaging.batch.message_count") === 1) {
          assert.equal(tag(producer, "messaging.kafka.offset"), tag(consumer, "messaging.kafka.offset"));
          assert.equal(tag(producer, "messaging.message.id"), tag(consumer, "messaging.message.id"));
        }
      }
    }
    // The limiter call: generation's gRPC client span, the limiter's server span its child.
    const grpcClients = view.trace.spans.filter(
      (s) => s.service === "generation" && kind(s) === "client" && tag(s, "rpc.system") === "grpc",
    );
    assert.ok(grpcClients.length > 0, `no gRPC client span in generation:\n${view.outline()}`);
    const served = view.trace.spans.filter(
      (s) =>
        s.service === "limiter" &&
        kind(s) === "server" &&
        grpcClients.some((client) => client.spanID === parentId(s)),
    );
    assert.ok(served.length > 0, `no limiter server span under generation's gRPC call:\n${view.outline()}`);
    assert.match(served[0]?.operationName ?? "", /limiter/i);
    // The round ran under the request's CONSUMER span in generation.
    for (const client of grpcClients) {
      assert.ok(
        view
          .ancestors(client)
          .some(
            (s) =>
              s.service === "generation" &&
              tag(s, "messaging.destination.name") === topic("generation.requests.v1"),
          ),
        "the limiter call is not under the generation request's span",
      );
    }
    assertGraphApiCall(view);
  });

  test("the buy tap's trace: ingress → conversation → payment → conversation → Graph API", async () => {
    await ana.tap(designs[3]?.ids[1] ?? "");
    await ana.giveAddress();
    assert.match((await ana.next())[0]?.text ?? "", /Preparing your checkout/);
    const [pay] = await ana.next();
    assert.equal(pay?.type, "cta_url");
    const view = await findTrace(
      "the checkout's trace, complete",
      "payment",
      (v) =>
        ["ingress", "conversation", "payment"].every((s) => v.services.has(s)) &&
        v.kafkaPairs(topic("payment.events.v1"), "payment", "conversation").length >= 1 &&
        v.kafkaPairs(topic("outbound.v1"), "conversation", "ingress").length >= 2 &&
        v.trace.spans.filter((s) => s.service === "ingress" && kind(s) === "client").length >= 2,
    );
    assertOneTree(view);
    for (const [destination, from, to] of [
      ["inbound.v1", "ingress", "conversation"],
      ["payment.requests.v1", "conversation", "payment"],
      ["payment.events.v1", "payment", "conversation"],
      ["outbound.v1", "conversation", "ingress"],
    ] as const) {
      assert.ok(
        view.kafkaPairs(topic(destination), from, to).length > 0,
        `no ${from} → ${to} pair on ${destination}:\n${view.outline()}`,
      );
    }
    assertGraphApiCall(view);
    // Its own trace, linked to the round's: the conversation's handling of the buy tap points back
    // to the trace that delivered the designs being bought.
    assert.ok(roundTraceId, "the confirm tap's test found the round's trace");
    const linked = view.trace.spans.filter(
      (s) =>
        s.service === "conversation" &&
        s.references.some((r) => r.traceID === roundTraceId && r.refType !== "CHILD_OF"),
    );
    assert.ok(linked.length > 0, `no conversation span links to the round's trace ${roundTraceId}`);
  });

  test("every span carries its service's resource: name, version, environment", async () => {
    const response = await fetch(`${jaeger.queryUrl}/api/services`);
    const services = ((await response.json()) as { data: string[] }).data;
    for (const name of SERVICES)
      assert.ok(services.includes(name), `${name} missing from ${services.join(", ")}`);
    const [first] = await tracesOf("limiter");
    assert.ok(first);
    const body = (await (await fetch(`${jaeger.queryUrl}/api/traces/${first.traceID}`)).json()) as {
      data: { processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }> }[];
    };
    const limiter = Object.values(body.data[0]?.processes ?? {}).find((p) => p.serviceName === "limiter");
    const keys = new Set(limiter?.tags.map((t) => t.key));
    for (const key of ["service.version", "deployment.environment.name"])
      assert.ok(keys.has(key), `limiter's resource lacks ${key}: ${[...keys].join(", ")}`);
  });
});

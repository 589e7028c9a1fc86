/**
 * `npm start`: provisions and starts Kafka, a MongoDB-wire server and Redis (unless KAFKA_BROKERS /
 * MONGO_URL / REDIS_URL name running ones), Jaeger for traces (unless OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_TRACES_EXPORTER is set), the WhatsApp simulator (unless WHATSAPP_API_URL is set: Meta's both
 * sides in a browser chat, the image provider and the development clock), then every service, and
 * prints where to look. Ctrl-C stops all of it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { schema as conversationSchema } from "@taituri/conversation-service/config";
import { type Jaeger, startInfra, startJaeger } from "@taituri/devenv";
import type { KafkaService } from "@taituri/kafka/access";
import { catalogNumbers, LOCAL_OPENAI_KEY, type Simulator, startSimulator } from "@taituri/simulator";
import { generate, loadDotEnv, root, step } from "./lib.ts";

loadDotEnv();
const local = {
  WHATSAPP_APP_SECRET: "local-app-secret",
  WHATSAPP_VERIFY_TOKEN: "local-verify-token",
  WHATSAPP_ACCESS_TOKEN: "local-access-token",
  INGRESS_PORT: "3000",
  // For a person at this terminal; LOG_FORMAT=json in .env gives what a log shipper would read.
  LOG_FORMAT: "pretty",
  // Spans go to the local Jaeger started below, or to OTEL_EXPORTER_OTLP_ENDPOINT when set.
  OTEL_METRICS_EXPORTER: "none",
  OTEL_LOGS_EXPORTER: "none",
};
const env: NodeJS.ProcessEnv = { ...local, ...process.env };

await step("generating protobuf code", generate);
// Internal calls that spend money carry OIDC tokens, and so does every Kafka client. In Kubernetes
// the cluster's service-account issuer signs them; locally a small issuer started with the broker
// does (discovery, JWKS, client credentials), and the broker trusts it.
const infra = await step("starting Kafka, MongoDB-wire and Redis", () =>
  startInfra({
    oidcPort: Number(process.env.OIDC_ISSUER_PORT ?? 3010),
    oidcClients: {
      // The operator CLI's client (`npm run limiter`): a development secret, admin scope.
      "limiter-admin": { secret: "local-limiter-admin", scopes: ["limiter.admin"] },
      // An operator's client for the payment service's internal API (order lookup, refunds).
      "payment-admin": { secret: "local-payment-admin", scopes: ["payment.admin"] },
    },
  }),
);
Object.assign(env, infra.env());
delete env.TAITURI_KAFKA_AUTH;
// Each service may touch only its own topics and groups (packages/kafka/data/access.json).
await infra.kafka.authorize(env.KAFKA_TOPIC_PREFIX ?? "taituri.");

// Traces: a local Jaeger v2 (built from the Go module proxy on first use, which takes a few
// minutes), unless the operator sends spans elsewhere or turns them off.
let jaeger: Jaeger | undefined;
if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT && !process.env.OTEL_TRACES_EXPORTER) {
  jaeger = await step("starting Jaeger", () =>
    startJaeger({
      otlpPort: Number(process.env.JAEGER_OTLP_PORT ?? 4318),
      queryPort: Number(process.env.JAEGER_QUERY_PORT ?? 16686),
      // The UI needs a jaeger-ui build; without one the query API (below) is what there is.
      ...(process.env.JAEGER_UI_ASSETS ? { uiAssetsPath: process.env.JAEGER_UI_ASSETS } : {}),
    }),
  );
  env.OTEL_TRACES_EXPORTER = "otlp";
  env.OTEL_EXPORTER_OTLP_ENDPOINT = jaeger.otlpEndpoint;
}

// The WhatsApp simulator: shoppers in a browser chat, Meta's webhooks to ingress and its Graph API
// for the dispatcher, an OpenAI-compatible images endpoint drawn by the local renderer, and a clock
// ingress and the conversation follow (so "three hours later" can be tried now).
let simulator: Simulator | undefined;
if (!process.env.WHATSAPP_API_URL) {
  simulator = await step("starting the WhatsApp simulator", () =>
    startSimulator({
      port: Number(process.env.SIMULATOR_PORT ?? 3900),
      webhookUrl: `http://127.0.0.1:${env.INGRESS_PORT}/webhook`,
      appSecret: String(env.WHATSAPP_APP_SECRET).split(",")[0] ?? "",
      accessToken: String(env.WHATSAPP_ACCESS_TOKEN),
      businessNumbers: catalogNumbers(conversationSchema.shape.CATALOG_FILE.parse(env.CATALOG_FILE)),
      ...(jaeger ? { jaegerUrl: jaeger.queryUrl, jaegerUi: Boolean(process.env.JAEGER_UI_ASSETS) } : {}),
      openaiApiKey: env.OPENAI_API_KEY ?? LOCAL_OPENAI_KEY,
      ...(env.PROMPTS_FILE ? { promptsFile: env.PROMPTS_FILE } : {}),
    }),
  );
  env.WHATSAPP_API_URL = simulator.graphUrl;
  env.DEV_CLOCK_URL ??= simulator.clockUrl;
  // The designs come from the simulator's images endpoint (the local renderer behind OpenAI's API),
  // so its "image provider fails / times out" toggles reach the generation service.
  if (!env.IMAGE_PROVIDER) {
    env.IMAGE_PROVIDER = "openai";
    env.OPENAI_BASE_URL = simulator.openaiBaseUrl;
    env.OPENAI_API_KEY ??= LOCAL_OPENAI_KEY;
    // A hung provider is given up on within seconds rather than a minute: the toggle is for watching.
    env.OPENAI_TIMEOUT_MS ??= "20000";
  }
}

// The limiter and payment trust the same local issuer, unless OIDC_ISSUER_URL names another; the
// generation service's client on it is the one it uses towards Kafka too.
if (!process.env.OIDC_ISSUER_URL && infra.oidc) {
  env.OIDC_ISSUER_URL = infra.oidc.url;
  env.OIDC_CLIENT_SECRET ??= infra.oidc.clientSecret("generation");
}
env.LIMITER_URL ??= `127.0.0.1:${process.env.LIMITER_GRPC_PORT ?? "50051"}`;

// Each service's ops port (/healthz, /readyz, /metrics): ingress's and payment's are apart from
// their public ones; the others serve nothing else over HTTP.
const services: Record<string, string> = {
  limiter: process.env.LIMITER_PORT ?? "3004",
  conversation: process.env.CONVERSATION_PORT ?? "3001",
  generation: process.env.GENERATION_PORT ?? "3002",
  payment: process.env.PAYMENT_OPS_PORT ?? "3103",
  // Ingress runs as two processes, as the chart runs it: the webhook and the dispatcher
  // (INGRESS_ROLE in services/ingress/src/config.ts).
  dispatcher: process.env.DISPATCHER_OPS_PORT ?? "3105",
  ingress: process.env.INGRESS_OPS_PORT ?? "3100",
};
/** What each process runs: the dispatcher is ingress in another role, under ingress's Kafka identity. */
const roles: Record<string, { service: KafkaService; env: NodeJS.ProcessEnv }> = {
  dispatcher: {
    service: "ingress",
    env: { INGRESS_ROLE: "dispatcher", INGRESS_OPS_PORT: services.dispatcher },
  },
  ingress: { service: "ingress", env: { INGRESS_ROLE: "webhook" } },
};
const children: ChildProcess[] = [];
// The services whose own "ready" line has been printed: every consumer started, not only its
// dependencies reached (all /readyz asks), so "Taituri is ready." never comes before one of them.
const saidReady = new Set<string>();
const READY_LINE = /(INFO: ready |"msg":"ready")/;
for (const name of Object.keys(services)) {
  const role = roles[name];
  const service = role?.service ?? name;
  const child = spawn(process.execPath, [`services/${service}/src/main.ts`], {
    cwd: root,
    // Each Kafka client logs in as its own service; the limiter has none.
    env:
      name === "limiter" ? env : { ...env, ...role?.env, ...infra.kafka.settings(service as KafkaService) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream)
      createInterface({ input: stream }).on("line", (line) => {
        if (READY_LINE.test(line)) saidReady.add(name);
        process.stdout.write(`[${name}] ${line}\n`);
      });
  }
  child.on("exit", (code, signal) => {
    if (!stopping) {
      process.stderr.write(`[taituri] ${name} exited (${signal ?? code}); stopping everything\n`);
      void stop(1);
    }
  });
  children.push(child);
}

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stderr.write("[taituri] stopping services…\n");
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
  await simulator?.close();
  await jaeger?.stop();
  await infra.stop();
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

await step("waiting for every service to be ready", async () => {
  const deadline = Date.now() + 120_000;
  for (const [name, port] of Object.entries(services)) {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (response) => response.ok,
        () => false,
      );
      if (ok && saidReady.has(name)) break;
      if (stopping) return;
      if (Date.now() > deadline) {
        process.stderr.write(`[taituri] ${name} not ready after 120 s\n`);
        return stop(1);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
});

const ingress = `http://127.0.0.1:${env.INGRESS_PORT}`;
/** Only the broker's super user may read the *.dlq topics: the settings `npm run dlq` logs in with. */
const dlqLogin = () => {
  const sasl = infra.kafka.client.sasl;
  if (sasl?.mechanism !== "plain") return "";
  return `KAFKA_BROKERS=${env.KAFKA_BROKERS} KAFKA_SASL_MECHANISM=plain KAFKA_SASL_USERNAME=${sasl.username} KAFKA_SASL_PASSWORD=${sasl.password} `;
};
process.stdout.write(`
${simulator ? `Open the WhatsApp simulator: ${simulator.url}\n\n` : ""}Taituri is ready.
  Webhook (Meta -> us):   ${ingress}/webhook
  Graph API (us -> Meta): ${env.WHATSAPP_API_URL}${simulator ? "  (the WhatsApp simulator)" : ""}
  OIDC issuer:            ${env.OIDC_ISSUER_URL}
  Traces (Jaeger): ${jaeger ? `API ${jaeger.queryUrl}/api/traces?service=ingress; UI ${jaeger.queryUrl} ${process.env.JAEGER_UI_ASSETS ? "" : "(a placeholder page unless JAEGER_UI_ASSETS names a jaeger-ui build: docs/operations.md)"}` : (env.OTEL_EXPORTER_OTLP_ENDPOINT ?? `OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER}`)}
  Health:                 ${Object.entries(services)
    .map(([name, port]) => `${name} http://127.0.0.1:${port}/readyz`)
    .join(", ")}
  Metrics:                http://127.0.0.1:<port>/metrics on the same ports
  Kafka ${env.KAFKA_BROKERS} · MongoDB ${env.MONGO_URL} · Redis ${env.REDIS_URL}

${
  simulator
    ? `Chat in the browser (above), or from a terminal, through the simulator:
  npm run -s shopper -- "I want a gift"        (--tap "<button or row>" to answer one)
`
    : `Send a signed webhook as Meta would:
  npm run -s sign-webhook -- "I want a gift" | sh
`
}
Paid orders: ${env.ORDERS_WEBHOOK_URL ? `posted, signed, to ${env.ORDERS_WEBHOOK_URL}` : "kept for you (set ORDERS_WEBHOOK_URL and ORDERS_WEBHOOK_SECRET to have them posted)"}:
  npm run -s orders -- list --state paid · show <number> · mark-shipped <number> [--tracking <url>]

Inspect or reset a shopper's limits:
  OIDC_CLIENT_SECRET=local-limiter-admin npm run -s limiter -- peek --shop <id> --shopper <id>

Dead letters, as the broker's super user (its password is new each run):
  ${dlqLogin()}npm run -s dlq -- list · show <topic> <partition>:<offset> · replay [--dry-run]

Ctrl-C stops everything.
`);

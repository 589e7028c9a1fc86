import type { IncomingMessage } from "node:http";
import { register } from "node:module";
import { FastifyOtelInstrumentation } from "@fastify/otel";
import { getBooleanFromEnv, getStringListFromEnv } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { HttpInstrumentation } from "@opentelemetry/instrumentation-http";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { MongoDBInstrumentation } from "@opentelemetry/instrumentation-mongodb";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { createAddHookMessageChannel } from "import-in-the-middle";
import { privacySpanProcessor } from "./index.ts";

export interface TelemetryOptions {
  serviceName: string;
  serviceVersion?: string;
  environment?: string;
  /**
   * Span processors to use instead of the exporters chosen by the standard OTEL_TRACES_EXPORTER /
   * OTEL_EXPORTER_OTLP_* variables; tests pass one with an in-memory exporter.
   */
  spanProcessors?: SpanProcessor[];
  /**
   * The service makes its own SERVER spans, at the edges it chooses, and no node:http client calls:
   * the HTTP and Fastify instrumentations are left out. They pay on every request, sampled or not
   * (an emitter bound to the context per request and per response, attributes computed before the
   * sampling decision, a span per Fastify hook): on ingress's webhook at 10 % sampling that was half
   * the untraced throughput (bench/README.md, "Issue #27").
   */
  ownServerSpans?: boolean;
}

export interface Telemetry {
  /**
   * Resolves once the ESM loader hook knows every module the instrumentations patch: a module
   * imported before then is not patched. Await it before importing the service's code.
   */
  ready: Promise<void>;
  shutdown(): Promise<void>;
}

/** Probes and scrapes: a span per Kubernetes probe would drown the traces people look for. */
const OPS_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);
const isOpsPath = (url: string | undefined) => OPS_PATHS.has((url ?? "").split("?")[0] ?? "");

/**
 * The contrib instrumentations every service gets. kafkajs's is left out on purpose: @taituri/kafka
 * makes its own PRODUCER and CONSUMER spans, and the contrib one would add a second pair per
 * message and overwrite each message's traceparent with the span of whichever send started the
 * group-committed request, so a batch mixing callers would put every message in the first
 * caller's trace.
 */
function instrumentations(ownServerSpans: boolean) {
  const server = ownServerSpans
    ? []
    : [
        new HttpInstrumentation({
          ignoreIncomingRequestHook: (request: IncomingMessage) => isOpsPath(request.url),
        }),
        // Hooks into every Fastify instance as it is created, so no service has to register a plugin.
        new FastifyOtelInstrumentation({
          registerOnInitialization: true,
          ignorePaths: (route) => isOpsPath(route.url),
        }),
      ];
  return [
    ...server,
    // fetch (the Graph API, OIDC token and JWKS calls, the image provider) goes through undici. A
    // request that already carries a traceparent comes from code with its own CLIENT span (the
    // Graph API adapter): a second span would only add a second traceparent header to it.
    new UndiciInstrumentation({ ignoreRequestHook: (request) => carriesTraceContext(request.headers) }),
    new GrpcInstrumentation(),
    // Statement text could hold a phone number or a message: leave it out.
    new MongoDBInstrumentation({ enhancedDatabaseReporting: false }),
    new IORedisInstrumentation(),
  ];
}

/** Whether undici request headers (a `name: value\r\n` string, or a flat name/value array) hold a traceparent. */
function carriesTraceContext(headers: string | (string | string[])[]): boolean {
  if (typeof headers === "string") return /(^|\r\n)traceparent:/i.test(headers);
  return headers.some((value, index) => index % 2 === 0 && String(value).toLowerCase() === "traceparent");
}

let esmHookRegistered = false;

/**
 * Starts the OpenTelemetry Node SDK. Everything else (exporter, endpoint, sampler, propagators) is
 * read by the SDK from the standard OTEL_* variables, so operators configure it the way they
 * configure any other OpenTelemetry service: OTEL_TRACES_SAMPLER=parentbased_traceidratio with
 * OTEL_TRACES_SAMPLER_ARG=0.1 keeps one new trace in ten and follows the caller's decision
 * otherwise. Call it before the app's own code is imported: the instrumentations patch libraries as
 * they load. OTEL_SDK_DISABLED=true leaves every library unpatched.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  if (getBooleanFromEnv("OTEL_SDK_DISABLED")) return { ready: Promise.resolve(), shutdown: async () => {} };
  // Our code is ESM; the instrumentations patch CommonJS `require`, and see an ESM `import` only
  // through import-in-the-middle's loader hook, registered once before anything else is imported.
  // Told, by each instrumentation as it is created, which modules it patches, and wrapping only
  // those: by default the hook wraps every module imported, ours included, each loaded through
  // synchronous requests to the loader thread. Ingress's imports took 815-1,005 ms of CPU that way,
  // 618-675 ms now; no difference under load was measured (bench/README.md, "Issue #27").
  let acknowledged: () => Promise<void> = async () => {};
  if (!esmHookRegistered) {
    const channel = createAddHookMessageChannel();
    register("@opentelemetry/instrumentation/hook.mjs", import.meta.url, channel.registerOptions);
    acknowledged = channel.waitForAllMessagesAcknowledged;
    esmHookRegistered = true;
  }
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      // The image's version (its VERSION build argument, set as TAITURI_VERSION), so a trace names
      // the release that served it; OTEL_RESOURCE_ATTRIBUTES adds the k8s.* ones the chart sets.
      [ATTR_SERVICE_VERSION]: options.serviceVersion ?? (process.env.TAITURI_VERSION || "0.0.0"),
      // Semantic conventions 1.27+ name; kept literal because it is still in the incubating entry point.
      "deployment.environment.name": options.environment ?? "local",
    }),
    // The privacy processor first, so every exporter after it sees redacted spans (instrumentations
    // copy what they see: ioredis would export the limiter's keys, which hold phone numbers). Given
    // any processors, NodeSDK builds none from OTEL_TRACES_EXPORTER, so ours are built here.
    spanProcessors: [privacySpanProcessor(), ...(options.spanProcessors ?? exportersFromEnv())],
    instrumentations: instrumentations(options.ownServerSpans === true),
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return {
    ready: acknowledged(),
    shutdown() {
      stopped ??= sdk.shutdown();
      return stopped;
    },
  };
}

/**
 * The exporters OTEL_TRACES_EXPORTER names (default `otlp`), as NodeSDK would build them: `otlp`
 * (OTLP over HTTP/protobuf to OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT, batched per OTEL_BSP_*),
 * `console`, or `none`. Anything else is refused at start-up rather than silently exporting nothing.
 */
function exportersFromEnv(): SpanProcessor[] {
  const names = getStringListFromEnv("OTEL_TRACES_EXPORTER") ?? ["otlp"];
  if (names.includes("none")) return [];
  return names.map((name) => {
    if (name === "otlp") return new BatchSpanProcessor(new OTLPTraceExporter());
    if (name === "console") return new SimpleSpanProcessor(new ConsoleSpanExporter());
    throw new Error(`OTEL_TRACES_EXPORTER=${name}: only otlp, console and none are supported`);
  });
}

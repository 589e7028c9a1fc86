import assert from "node:assert/strict";
import { after, test } from "node:test";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import {
  extractContext,
  injectContext,
  pseudonym,
  SpanKind,
  SpanStatusCode,
  trace,
  withSpan,
} from "./index.ts";
import { startTelemetry } from "./sdk.ts";

const exporter = new InMemorySpanExporter();
const processor = new SimpleSpanProcessor(exporter);
// As the image and the chart set them: the release, and the pod from the downward API.
process.env.TAITURI_VERSION = "1.4.2";
process.env.OTEL_RESOURCE_ATTRIBUTES = "k8s.pod.name=taituri-ingress-7d9f,k8s.namespace.name=shop";
const telemetry = startTelemetry({ serviceName: "test", spanProcessors: [processor] });
// Export waits for the resource's asynchronous attributes, so read spans only after a flush.
const finishedSpans = async () => {
  await processor.forceFlush();
  return exporter.getFinishedSpans();
};
after(() => telemetry.shutdown());

test("context written to headers continues the same trace on the other side", async () => {
  const headers = await withSpan("t", "produce", { kind: SpanKind.PRODUCER }, async () => injectContext());
  assert.match(headers.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  await withSpan(
    "t",
    "consume",
    { kind: SpanKind.CONSUMER, parent: extractContext(headers) },
    async () => {},
  );
  const [produce, consume] = await finishedSpans();
  assert.ok(produce && consume);
  assert.equal(consume.spanContext().traceId, produce.spanContext().traceId);
  assert.equal(consume.parentSpanContext?.spanId, produce.spanContext().spanId);
});

test("a failing span records the error, is marked ERROR, ends, and rethrows", async () => {
  exporter.reset();
  await assert.rejects(
    withSpan("t", "boom", {}, async () => {
      throw new Error("kaput");
    }),
    /kaput/,
  );
  const [span] = await finishedSpans();
  assert.equal(span?.status.code, SpanStatusCode.ERROR);
  assert.equal(span?.events[0]?.name, "exception");
  assert.equal(trace.getActiveSpan(), undefined);
});

test("a server span keeps its route, method, status and server address, not the URL or who asked", async () => {
  exporter.reset();
  const tracer = trace.getTracer("@opentelemetry/instrumentation-http");
  // What the HTTP instrumentation records for a checkout page (the session id grants payment).
  const span = tracer.startSpan("GET", {
    kind: SpanKind.SERVER,
    attributes: {
      "http.request.method": "GET",
      "url.scheme": "http",
      "url.path": "/checkout/lcs_2VmVkjgAgYNkx1OoZIH4",
      "url.query": "from=%2B34600111222",
      "server.address": "pay.example",
      "server.port": 443,
      "client.address": "203.0.113.7",
      "network.peer.address": "10.0.0.9",
      "network.peer.port": 51234,
      "http.request.header.x-forwarded-for": ["203.0.113.7"],
    },
  });
  span.setAttributes({ "http.response.status_code": 200, "http.route": "/checkout/:session" });
  span.updateName("GET /checkout/:session");
  span.end();
  // Fastify's request span: the path with its query; and a request no route matched.
  tracer
    .startSpan("request", {
      kind: SpanKind.INTERNAL,
      attributes: {
        "url.path": "/internal/orders/PN1%3AUS.13491208655302741918%2Fo1?full=1",
        "http.route": "/internal/orders/:id",
      },
    })
    .end();
  tracer
    .startSpan("GET", {
      kind: SpanKind.SERVER,
      attributes: {
        "url.path": "/webhook",
        "url.query": "hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1158201444",
        "http.url": "http://user:pw@in.example/webhook?hub.verify_token=s3cret",
      },
    })
    .end();
  tracer
    .startSpan("GET", { kind: SpanKind.SERVER, attributes: { "http.target": "/nope/lcs_abc/x?y=1" } })
    .end();
  const [page, request, verify, unmatched] = await finishedSpans();
  assert.equal(page?.name, "GET /checkout/:session");
  assert.deepEqual(page?.attributes, {
    "http.request.method": "GET",
    "url.scheme": "http",
    "url.path": "/checkout/:session",
    "server.address": "pay.example",
    "server.port": 443,
    "http.response.status_code": 200,
    "http.route": "/checkout/:session",
  });
  assert.equal(request?.attributes["url.path"], "/internal/orders/:id");
  assert.deepEqual(verify?.attributes, { "url.path": "/webhook", "http.url": "http://in.example/webhook" });
  assert.deepEqual(unmatched?.attributes, { "http.target": "/nope/*" });
});

test("a client span keeps the path it called, not the query", async () => {
  exporter.reset();
  trace
    .getTracer("@opentelemetry/instrumentation-undici")
    .startSpan("POST", {
      kind: SpanKind.CLIENT,
      attributes: {
        "url.full": "https://graph.example/v21.0/1234567890/messages?access_token=EAAG#x",
        "url.path": "/v21.0/1234567890/messages",
        "url.query": "?access_token=EAAG",
        "server.address": "graph.example",
        "network.peer.address": "157.240.1.1",
      },
    })
    .end();
  const [call] = await finishedSpans();
  const phoneNumberId = pseudonym("1234567890");
  assert.deepEqual(call?.attributes, {
    "url.full": `https://graph.example/v21.0/${phoneNumberId}/messages`,
    "url.path": `/v21.0/${phoneNumberId}/messages`,
    "server.address": "graph.example",
    "network.peer.address": "157.240.1.1",
  });
});

test("spans name the release (TAITURI_VERSION) and carry the pod's k8s.* attributes", async () => {
  exporter.reset();
  await withSpan("t", "resource", {}, async () => {});
  const [span] = await finishedSpans();
  assert.ok(span);
  const attributes = span.resource.attributes;
  assert.equal(attributes["service.version"], "1.4.2");
  assert.equal(attributes["k8s.pod.name"], "taituri-ingress-7d9f");
  assert.equal(attributes["k8s.namespace.name"], "shop");
});

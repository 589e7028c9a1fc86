import assert from "node:assert/strict";
import { after, test } from "node:test";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { Registry } from "@taituri/ops";
import { SpanKind, SpanStatusCode } from "@taituri/telemetry";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { buildIngressApp } from "./app.ts";

// Its own file: the SDK is global to the process. As main.ts starts it for ingress: no HTTP or
// Fastify instrumentation, so the webhook's span is the request's only server span.
const exporter = new InMemorySpanExporter();
const telemetry = startTelemetry({
  serviceName: "ingress-test",
  ownServerSpans: true,
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
after(() => telemetry.shutdown());

function setup(send: () => Promise<void> = async () => {}) {
  return buildIngressApp({
    appSecrets: ["secret"],
    verifyToken: "verify-me",
    bodyLimitBytes: 4096,
    topics: topicNames("t."),
    publisher: { send },
    logger: createLogger({ service: "test", level: "silent" }),
    registry: new Registry(),
    publishTimeoutMs: 200,
    recentIdsCapacity: 100,
  });
}

/**
 * The spans ended once the request's server span has (it ends just after the answer is sent), or
 * after 200 ms when none does.
 */
async function finished() {
  const deadline = Date.now() + 200;
  while (Date.now() < deadline && !exporter.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER))
    await new Promise((resolve) => setTimeout(resolve, 5));
  return exporter.getFinishedSpans();
}

/** A signed text webhook POSTed to `app`, with any extra headers (trace context), after the spans so far are cleared. */
async function post(app: ReturnType<typeof setup>, wamid: string, headers: Record<string, string> = {}) {
  await finished();
  exporter.reset();
  const body = JSON.stringify(textWebhook("hi", { wamid, waId: "15550001111", phoneNumberId: "PN" }));
  return app.inject({
    method: "POST",
    url: "/webhook",
    headers: {
      "content-type": "application/json",
      "x-hub-signature-256": signWebhook(body, "secret"),
      ...headers,
    },
    payload: body,
  });
}

test("a webhook without trace context starts a trace: one SERVER span, as an HTTP server span would say it", async () => {
  const response = await post(setup(), "wamid.span.1");
  assert.equal(response.statusCode, 200);
  const spans = await finished();
  const server = spans.filter((s) => s.kind === SpanKind.SERVER);
  assert.deepEqual(
    server.map((s) => s.name),
    ["POST /webhook"],
    `one server span, got ${spans.map((s) => s.name)}`,
  );
  const [span] = server;
  assert.equal(span?.parentSpanContext, undefined);
  assert.equal(span?.attributes["http.request.method"], "POST");
  assert.equal(span?.attributes["http.route"], "/webhook");
  assert.equal(span?.attributes["http.response.status_code"], 200);
  assert.equal(span?.attributes["webhook.events"], 1);
  assert.equal(span?.attributes["shopper.id"] !== undefined, true);
  assert.ok(!JSON.stringify(span?.attributes).includes("15550001111"), "no phone number in the span");
});

test("a webhook carrying a traceparent joins the caller's trace", async () => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const response = await post(setup(), "wamid.span.2", { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
  assert.equal(response.statusCode, 200);
  const [span] = (await finished()).filter((s) => s.kind === SpanKind.SERVER);
  assert.equal(span?.spanContext().traceId, traceId);
  assert.equal(span?.parentSpanContext?.spanId, "00f067aa0ba902b7");
});

test("a caller's unsampled trace is followed: no span is recorded", async () => {
  const response = await post(setup(), "wamid.span.3", {
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-00",
  });
  assert.equal(response.statusCode, 200);
  assert.deepEqual(await finished(), []);
});

test("a webhook Kafka could not take is a 503 and an ERROR span", async () => {
  const response = await post(
    setup(async () => {
      throw new Error("broker away");
    }),
    "wamid.span.4",
  );
  assert.equal(response.statusCode, 503);
  const [span] = (await finished()).filter((s) => s.kind === SpanKind.SERVER);
  assert.equal(span?.attributes["http.response.status_code"], 503);
  assert.equal(span?.status.code, SpanStatusCode.ERROR);
});

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { extractContext, injectContext, SpanKind, SpanStatusCode, trace, withSpan } from "./index.ts";
import { startTelemetry } from "./sdk.ts";

const exporter = new InMemorySpanExporter();
const processor = new SimpleSpanProcessor(exporter);
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

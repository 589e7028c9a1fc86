import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { context, TraceFlags, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { createLogger } from "./index.ts";

// What the SDK registers in a service: without a context manager no span is ever "active".
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { lines, destination };
}

test("a line logged inside a span carries its trace and span ids", () => {
  const { lines, destination } = capture();
  const logger = createLogger({ service: "svc", destination, environment: "test" });
  const spanContext = {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: TraceFlags.SAMPLED,
  };
  context.with(trace.setSpanContext(context.active(), spanContext), () => logger.info("inside"));
  logger.info("outside");
  assert.equal(lines[0]?.trace_id, spanContext.traceId);
  assert.equal(lines[0]?.span_id, spanContext.spanId);
  assert.equal(lines[0]?.service, "svc");
  assert.equal(lines[0]?.env, "test");
  assert.equal(lines[0]?.level, "info");
  assert.equal(lines[1]?.trace_id, undefined);
});

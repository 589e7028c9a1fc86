import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Writable } from "node:stream";
import { test } from "node:test";
import { context, TraceFlags, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { configurePseudonyms, createLogger, DEV_PSEUDONYM_KEY, pseudonym, redact } from "./index.ts";

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

test("phone-number-like ids are written as their pseudonyms, wherever they are in the line", () => {
  const { lines, destination } = capture();
  const logger = createLogger({ service: "svc", destination });
  logger.error(
    { err: new Error("round PN1:34600111222/j1/r2 is busy"), shopper: "+34600111222", n: 3 },
    "for 34600111222",
  );
  const line = JSON.stringify(lines[0]);
  assert.doesNotMatch(line, /34600111222/);
  const p = pseudonym("34600111222");
  assert.match(p, /^p[0-9a-f]{16}$/);
  assert.equal((lines[0]?.err as { message?: string } | undefined)?.message, `round PN1:${p}/j1/r2 is busy`);
  assert.equal(lines[0]?.shopper, p);
  assert.equal(lines[0]?.msg, `for ${p}`);
  assert.equal(lines[0]?.n, 3);
});

test("pseudonyms depend on the key, are stable, and redact leaves hex ids and short numbers alone", () => {
  const before = pseudonym("34600111222");
  assert.equal(pseudonym("34600111222"), before);
  configurePseudonyms("another key");
  try {
    assert.notEqual(pseudonym("34600111222"), before);
  } finally {
    configurePseudonyms(DEV_PSEUDONYM_KEY);
  }
  const traceId = "0af7651916cd43dd8448eb211c80319c";
  assert.equal(
    redact(`trace ${traceId} offset 123456 at 2026-11-30`),
    `trace ${traceId} offset 123456 at 2026-11-30`,
  );
  assert.equal(redact(redact("wamid.abc.34600111222.1")), `wamid.abc.${before}.1`);
});

test("business-scoped user ids are written as their pseudonyms too, whole", () => {
  const bsuid = "US.13491208655302741918";
  const parent = "US.ENT.11815799212886844830";
  assert.equal(redact(`PN1:${bsuid}/j1/r2`), `PN1:${pseudonym(bsuid)}/j1/r2`);
  assert.equal(redact(`from ${parent}.`), `from ${pseudonym(parent)}.`);
  assert.equal(redact(redact(`PN1:${bsuid}`)), `PN1:${pseudonym(bsuid)}`);
  // Prose and hosts keep their short dotted words.
  assert.equal(redact("OK.done at EU.west"), "OK.done at EU.west");
});

test("a signed link keeps its path and loses its signature", () => {
  const url = "https://pay.example/orders/7KQ2M9XD/design?expires=1767225600&signature=9f86d081884c7d65";
  assert.equal(
    redact(`GET ${url} 200`),
    `GET https://pay.example/orders/7KQ2M9XD/design?expires=${pseudonym("1767225600")}&signature=[redacted] 200`,
  );
  assert.equal(redact("no signature here"), "no signature here");
});

test("URL-encoded phone numbers and BSUIDs are written as their pseudonyms too", () => {
  const phone = pseudonym("34600111222");
  const bsuid = "US.13491208655302741918";
  assert.equal(redact("/internal/orders/PN1%3A34600111222%2Fo1"), `/internal/orders/PN1%3A${phone}%2Fo1`);
  assert.equal(redact("to=%2B34600111222&x=1"), `to=%2B${phone}&x=1`);
  assert.equal(redact("q=call+34600111222"), `q=call+${phone}`);
  // Encoded twice (a URL inside a query), and a BSUID after an escape.
  assert.equal(redact("next=%2Fo%2FPN1%253A34600111222"), `next=%2Fo%2FPN1%253A${phone}`);
  assert.equal(redact(`PN1%3A${bsuid}%2Fo1`), `PN1%3A${pseudonym(bsuid)}%2Fo1`);
  assert.equal(redact(redact("PN1%3A34600111222")), `PN1%3A${phone}`);
  // Escapes before hex and short numbers leave them alone.
  assert.equal(
    redact("50% of 0af7651916cd43dd %2F1234 %2Fabc1234567"),
    "50% of 0af7651916cd43dd %2F1234 %2Fabc1234567",
  );
});

test("pretty lines are one readable line per entry, redacted like JSON ones", () => {
  let out = "";
  const destination = new Writable({
    write(chunk, _encoding, done) {
      out += chunk.toString();
      done();
    },
  });
  const logger = createLogger({ service: "svc", format: "pretty", destination });
  const bsuid = "US.13491208655302741918";
  logger.info({ shopper: "+34600111222", conversation: `PN1:${bsuid}` }, "for 34600111222");
  logger.child({ component: "kafkajs" }).warn({ url: "https://x/o?signature=abc" }, "slow");
  const lines = out.trimEnd().split("\n");
  assert.equal(lines.length, 2, out);
  const p = pseudonym("34600111222");
  assert.match(
    lines[0] ?? "",
    new RegExp(
      `^\\[\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\] INFO: for ${p} \\{"shopper":"${p}","conversation":"PN1:${pseudonym(bsuid)}"\\}$`,
    ),
  );
  assert.match(
    lines[1] ?? "",
    /^\[[\d:.]+\] WARN: kafkajs: slow \{"url":"https:\/\/x\/o\?signature=\[redacted\]"\}$/,
  );
  assert.doesNotMatch(out, /34600111222|13491208655302741918|abc/);
  // The service and environment are start.ts's prefix and the deployment's, not each line's.
  assert.doesNotMatch(out, /svc|"env"/);
});

test("json stays the default", () => {
  const { lines, destination } = capture();
  createLogger({ service: "svc", destination }).info("plain");
  assert.equal(lines[0]?.msg, "plain");
});

test("pseudonyms remembered or not are the HMAC of the id, past the memory's bound too", () => {
  const expected = (id: string) =>
    `p${createHmac("sha256", DEV_PSEUDONYM_KEY).update(id).digest("hex").slice(0, 16)}`;
  const ids = Array.from({ length: 12_000 }, (_, i) => `3460${String(i).padStart(7, "0")}`);
  for (const id of ids) assert.equal(pseudonym(id), expected(id));
  // Again: the first ones have left the memory, the last ones are in it.
  for (const id of [ids[0] ?? "", ids[11_999] ?? ""]) assert.equal(pseudonym(id), expected(id));
});

import assert from "node:assert/strict";
import { randomInt, randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { type Infra, startInfra } from "@taituri/devenv";
import { createLogger } from "@taituri/logging";
import { conversationAttributes, pseudonym } from "@taituri/telemetry";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";
import { Shopper } from "./support/shopper.ts";
import type { Stack } from "./support/stack.ts";

/**
 * No phone number, name or message text in plaintext in what the services export: one whole
 * journey (hello → designs from the REAL generation service admitted by the REAL limiter → a
 * checkout with the REAL payment service → paid) through every service in this process, with the
 * OpenTelemetry SDK and its instrumentations on, every span kept in memory, every log line (debug
 * level, kafkajs's included) captured, and every service's /metrics scraped afterwards.
 */
const exporter = new InMemorySpanExporter();
const processor = new SimpleSpanProcessor(exporter);
// One SDK per process: started before any service module is imported, so the instrumentations
// patch the libraries the services load. startTelemetry puts its privacy processor before ours, as
// in every service (without it the ioredis instrumentation exports the limiter's keys, which hold
// the shopper's number: this test fails).
const telemetry = startTelemetry({ serviceName: "privacy-test", spanProcessors: [processor] });

const logLines: string[] = [];
const logger = createLogger({
  service: "privacy",
  level: "debug",
  destination: new Writable({
    write(chunk, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  }),
});

const run = randomUUID().slice(0, 8);
const SECRET = "privacy-secret";
// Distinctive enough that a match anywhere can only be a leak: a 13-digit number, a profile name, a
// first message and a recipient name no service could have made up.
const WA_ID = `4479${String(randomInt(1e8, 1e9))}`;
// And a business-scoped user id beside it, as Meta sends since April 2026: the conversation's key.
const USER_ID = `GB.${String(randomInt(1e9, 1e10))}${String(randomInt(1e9, 1e10))}`;
const PROFILE = `Xanthippe Q${run}`;
const FIRST_MESSAGE = `Quixotic marmalade ${run} for my aunt`;
const RECIPIENT = "Zenobia";
const secrets = [
  WA_ID,
  `+${WA_ID}`,
  USER_ID,
  USER_ID.slice(3),
  PROFILE,
  "Xanthippe",
  FIRST_MESSAGE,
  "Quixotic marmalade",
  RECIPIENT,
];

let infra: Infra;
let graph: FakeGraphApi;
let stack: Stack;

before(async () => {
  // Imported only now, after the SDK has started, so the instrumentations see the services' libraries load.
  const { startStack } = await import("./support/stack.ts");
  infra = await startInfra();
  graph = await startFakeGraphApi();
  stack = await startStack({
    id: `privacy-${run}`,
    infra,
    graph,
    logger,
    secret: SECRET,
    generation: true,
    payment: true,
    conversation: { TIMER_POLL_MS: "200" },
  });
});

after(async () => {
  await stack?.stop();
  await graph?.close();
  await infra?.stop();
  await telemetry.shutdown();
});

/** Every string an exporter would send for a span: name, attributes, events, links, status, resource. */
function spanText(span: ReadableSpan): string {
  return JSON.stringify({
    name: span.name,
    attributes: span.attributes,
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes })),
    links: span.links.map((l) => l.attributes),
    status: span.status,
    resource: span.resource.attributes,
    scope: span.instrumentationScope,
  });
}

function leaksIn(text: string): string[] {
  return secrets.filter((secret) => text.includes(secret));
}

describe("privacy of telemetry", { timeout: 5 * 60_000 }, () => {
  test("a whole journey leaves no phone number, BSUID, name or message text in spans, logs or metrics", async () => {
    const shopper = new Shopper({
      waId: WA_ID,
      userId: USER_ID,
      phoneNumberId: "PNPRIV",
      webhook: () => stack.ingress.endpoints.webhook ?? "",
      secret: SECRET,
      graph,
      wamidPrefix: run,
      timeoutMs: 45_000,
      profileName: PROFILE,
    });
    await shopper.say(FIRST_MESSAGE);
    await shopper.next();
    await shopper.say(RECIPIENT);
    const [themes] = await shopper.next();
    await shopper.tap(themes?.ids.find((id) => id.endsWith(":birthday")) ?? "");
    const [styles] = await shopper.next();
    await shopper.tap(styles?.ids.find((id) => id.endsWith(":retro")) ?? "");
    const [confirm] = await shopper.next();
    assert.match(confirm?.text ?? "", new RegExp(RECIPIENT), "the bot did read the name");
    await shopper.tap(confirm?.ids[0] ?? "");
    await shopper.next();
    const shown = await shopper.next(4);
    await shopper.tap(shown[3]?.ids[0] ?? "");
    await shopper.next();
    const [pay] = await shopper.next();
    assert.equal(pay?.type, "cta_url");
    const paid = await fetch(`${pay?.url}/pay`, { method: "POST" });
    assert.equal(paid.status, 200);
    assert.match((await shopper.next())[0]?.text ?? "", /Payment received/);

    await processor.forceFlush();
    const spans = exporter.getFinishedSpans();
    // The capture works: the journey made spans in every service and logged, with pseudonyms.
    const scopes = new Set(spans.map((s) => s.instrumentationScope.name));
    for (const scope of ["@taituri/ingress", "@taituri/kafka", "@taituri/generation", "@taituri/payment"])
      assert.ok(scopes.has(scope), `spans from ${scope} (got ${[...scopes].join(", ")})`);
    const shopperTag = pseudonym(USER_ID);
    assert.ok(
      spans.some((s) => s.attributes["shopper.id"] === shopperTag),
      "the shopper's spans are findable by their pseudonym",
    );
    assert.ok(
      spans.some(
        (s) =>
          s.attributes["conversation.id"] === conversationAttributes(`PNPRIV:${USER_ID}`)["conversation.id"],
      ),
    );
    assert.ok(logLines.length > 5, `log lines captured (${logLines.length})`);

    for (const span of spans) {
      const text = spanText(span);
      assert.deepEqual(leaksIn(text), [], `span "${span.name}" leaks: ${text}`);
    }
    for (const line of logLines) assert.deepEqual(leaksIn(line), [], `log line leaks: ${line}`);

    for (const service of stack.services) {
      const ops = service.endpoints.ops;
      assert.ok(ops, "every service serves /metrics");
      const metrics = await (await fetch(`${ops}/metrics`)).text();
      assert.match(metrics, /# TYPE/);
      assert.deepEqual(leaksIn(metrics), [], `${ops}/metrics leaks`);
    }
  });
});

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, type TestContext, test } from "node:test";
import {
  type Infra,
  type MongoOutage,
  type RestartableMongo,
  startInfra,
  startRestartableMongo,
} from "@taituri/devenv";
import { Header } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import type { RunningService } from "@taituri/service";
import { eventually, type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import { Kafka, logLevel } from "kafkajs";
import { type Read, Shopper } from "./support/shopper.ts";
import { type Stack, startStack } from "./support/stack.ts";

/**
 * A database outage under load, on real servers: shoppers write before and during a 20-second
 * outage of the MongoDB-wire server, then it comes back; once its storage (FerretDB's PostgreSQL
 * stopped: FerretDB still answers, every command with InternalError, as a failover's "not now"
 * would), once FerretDB itself (connections refused).
 * Nothing may be dead-lettered, and every shopper gets each reply exactly once, in order, after it
 * returns: the consumers retry in place until the store answers again.
 *
 * The MongoDB-wire server is this file's own (startRestartableMongo), even when MONGO_URL names a
 * shared one: someone else's server is not ours to stop. Kafka and Redis come from startInfra.
 */
const SECRET = "mongo-outage-secret";
const OUTAGE_MS = 20_000;
/** Shoppers mid-journey when the store goes, and shoppers who first write while it is away. */
const BEFORE = 12;
const DURING = 12;
const run = runId();
const id = `it-mongo-outage-${run}`;
const logger = createLogger({ service: "it-mongo-outage", level: process.env.TEST_LOG_LEVEL ?? "silent" });

let mongo: RestartableMongo;
let infra: Infra;
let graph: FakeGraphApi;
let stack: Stack;

before(async () => {
  mongo = await startRestartableMongo();
  if (mongo.kind !== "ferretdb") throw new Error("this test stops FerretDB's PostgreSQL; got a mongod");
  // Our server stands in for MONGO_URL, so startInfra takes Kafka and Redis as they are.
  infra = await startInfra({ env: { ...process.env, MONGO_URL: mongo.url } });
  graph = await startFakeGraphApi();
  stack = await startStack({ id, infra, graph, logger, secret: SECRET });
  // Services listen before their dependencies are connected: the outage is to start on a system
  // that was ready.
  for (const service of stack.services) {
    const ops = service.endpoints.ops;
    if (ops)
      await eventually(`${ops}/readyz`, async () => (await fetch(`${ops}/readyz`)).status === 200, 60_000);
  }
});

after(async () => {
  // A failed test may leave the store down: bring it back, so the services stop without waiting
  // out their retries against a server that is not there.
  if (mongo && !mongo.isRunning()) await mongo.start().catch(() => {});
  await stack?.stop();
  await graph?.close();
  await infra?.stop();
  await mongo?.close();
});

let shopperSeq = 0;
function shopper(): Shopper {
  shopperSeq += 1;
  return new Shopper({
    waId: `3470${run.replace(/\D/g, "5").slice(0, 4)}${String(shopperSeq).padStart(3, "0")}`,
    phoneNumberId: "PNMO",
    webhook: () => stack.ingress.endpoints.webhook ?? "",
    secret: SECRET,
    graph,
    wamidPrefix: run,
    // The outage, the backoff's last wait after it, and a loaded machine.
    timeoutMs: OUTAGE_MS + 60_000,
  });
}

/**
 * The journey's first four replies, each checked for what it must be: the question for the
 * recipient, the themes, the styles, the confirmation.
 */
function checkJourney(got: Read[], who: string): void {
  assert.equal(got.length, 4, `${who}: ${JSON.stringify(got)}`);
  const [ask, themes, styles, confirm] = got;
  assert.equal(ask?.type, "text", `${who}: the first reply asks who the gift is for`);
  assert.ok(
    themes?.ids.some((i) => i.endsWith(":birthday")),
    `${who}: the themes next: ${JSON.stringify(themes)}`,
  );
  assert.ok(
    styles?.ids.some((i) => i.endsWith(":watercolor")),
    `${who}: the styles next: ${JSON.stringify(styles)}`,
  );
  assert.match(confirm?.text ?? "", /A Birthday design in Watercolor style for Rosa/, who);
}

/** The rest of the journey to the confirmation, from the themes on: each tap waits for its reply. */
async function themesToConfirmation(s: Shopper, themes: Read | undefined): Promise<void> {
  await s.tap(themes?.ids.find((i) => i.endsWith(":birthday")) ?? "");
  const [styles] = await s.next();
  await s.tap(styles?.ids.find((i) => i.endsWith(":watercolor")) ?? "");
  await s.next();
}

/** Every record in this stack's dead-letter topics (`<prefix>*.dlq`), with its reason. */
async function deadLetters(): Promise<Array<{ topic: string; reason: string; error: string }>> {
  const client = new Kafka({ ...infra.kafka.client, clientId: `${id}-dlq`, logLevel: logLevel.NOTHING });
  const admin = client.admin();
  await admin.connect();
  const dlqs: Array<{ topic: string; records: number }> = [];
  try {
    for (const topic of await admin.listTopics()) {
      if (!topic.startsWith(stack.prefix) || !topic.endsWith(".dlq")) continue;
      const offsets = await admin.fetchTopicOffsets(topic);
      const records = offsets.reduce((sum, p) => sum + Number(BigInt(p.high) - BigInt(p.low)), 0);
      dlqs.push({ topic, records });
    }
  } finally {
    await admin.disconnect();
  }
  assert.ok(dlqs.length > 0, `no dead-letter topics under ${stack.prefix}: the check would see nothing`);
  const total = dlqs.reduce((sum, d) => sum + d.records, 0);
  if (total === 0) return [];
  // Some were: read them, for their reasons in the failure message.
  const found: Array<{ topic: string; reason: string; error: string }> = [];
  const consumer = client.consumer({ groupId: `${id}-dlq-${randomUUID()}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  try {
    await consumer.subscribe({
      topics: dlqs.filter((d) => d.records > 0).map((d) => d.topic),
      fromBeginning: true,
    });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        found.push({
          topic,
          reason: message.headers?.[Header.dlqReason]?.toString() ?? "",
          error: message.headers?.[Header.dlqError]?.toString() ?? "",
        });
      },
    });
    const deadline = Date.now() + 15_000;
    while (found.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await consumer.disconnect();
  }
  return found.length > 0 ? found : [{ topic: "(unread)", reason: `${total} records`, error: "" }];
}

/** The sum of a counter's samples in a service's registry, optionally only those matching `labels`. */
async function counter(service: RunningService, name: string, labels = ""): Promise<number> {
  const text = await service.registry.getSingleMetricAsString(name).catch(() => "");
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/**
 * Shoppers mid-journey when `part` goes and shoppers who first write while it is away, through an
 * outage of OUTAGE_MS; checks every journey and reports what it took.
 */
async function throughOutage(part: MongoOutage, t: TestContext): Promise<void> {
  const early = Array.from({ length: BEFORE }, shopper);
  const late = Array.from({ length: DURING }, shopper);
  const retriesBefore = await retries();

  // Before: each early shopper starts and has the question for the recipient.
  await Promise.all(
    early.map(async (s) => {
      await s.say("I want a gift");
      await s.next();
    }),
  );
  const repliesBefore = graph.sends().length;

  // The store goes. Each early shopper answers at once, so their messages meet it away.
  await mongo.stop(part);
  const downAt = performance.now();
  const earlyJourneys = early.map(async (s) => {
    await s.say("Rosa");
    const [themes] = await s.next();
    await themesToConfirmation(s, themes);
  });
  // Late shoppers write their first two messages back to back while it is away: their replies
  // must come in the order of the messages.
  const lateJourneys = late.map(async (s, i) => {
    await new Promise((resolve) => setTimeout(resolve, (i * OUTAGE_MS) / 2 / DURING));
    await s.say("I want a gift");
    await s.say("Rosa");
    const [, themes] = await s.next(2);
    await themesToConfirmation(s, themes);
  });
  // Failures are awaited below, after the store is back; until then they are only recorded.
  const journeys = Promise.allSettled([...earlyJourneys, ...lateJourneys]);

  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (performance.now() - downAt)));
  const repliedDuring = graph.sends().length - repliesBefore;
  const during = await retries();
  await mongo.start();
  const backAt = performance.now();

  const outcomes = await journeys;
  const recoveredMs = Math.round(performance.now() - backAt);
  // Dead letters first: when journeys fail, they are usually why.
  assert.deepEqual(await deadLetters(), [], "nothing dead-lettered");
  const failed = outcomes.flatMap((o, i) => (o.status === "rejected" ? [`shopper ${i}: ${o.reason}`] : []));
  assert.deepEqual(failed, [], "every journey reached its confirmation");

  // Nothing more comes: a reply sent twice would show now.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  for (const [i, s] of [...early, ...late].entries()) {
    const who = `shopper ${i} (${i < BEFORE ? "mid-journey when the store went" : "first wrote while it was away"})`;
    checkJourney(s.all(), who);
    assert.equal(s.requests().length, 4, `${who}: each reply sent once`);
  }
  assert.deepEqual(await deadLetters(), [], "nothing dead-lettered");

  const total = await retries();
  const transient = total.transient - retriesBefore.transient;
  const unknown = total.unknown - retriesBefore.unknown;
  // The outage was met: messages failed against it and were retried (else this proves nothing).
  assert.ok(
    during.transient + during.unknown > retriesBefore.transient + retriesBefore.unknown,
    "messages were retried while the store was away",
  );
  assert.ok(transient > 0, "the store's answers were classified transient");
  t.diagnostic(
    `${part} outage of ${OUTAGE_MS / 1000} s: ${BEFORE + DURING} shoppers, ${4 * (BEFORE + DURING)} replies ` +
      `(${repliedDuring} sent while the store was away); retries: ${transient} transient, ${unknown} unknown, ` +
      `${(total.seconds - retriesBefore.seconds).toFixed(1)} s waited over all messages; ` +
      `every journey at its confirmation ${recoveredMs} ms after the store was back`,
  );
}

/** The consumers' retries so far, over every service of the stack. */
async function retries(): Promise<{ transient: number; unknown: number; seconds: number }> {
  const each = await Promise.all(
    stack.services.map(async (s) => ({
      transient: await counter(s, "kafka_consumer_retries_total", 'kind="transient"'),
      unknown: await counter(s, "kafka_consumer_retries_total", 'kind="unknown"'),
      seconds: await counter(s, "kafka_consumer_retry_seconds_total"),
    })),
  );
  return each.reduce(
    (sum, r) => ({
      transient: sum.transient + r.transient,
      unknown: sum.unknown + r.unknown,
      seconds: sum.seconds + r.seconds,
    }),
    { transient: 0, unknown: 0, seconds: 0 },
  );
}

describe("a MongoDB-wire server outage under load", { timeout: 300_000 }, () => {
  test("FerretDB's PostgreSQL stopped for 20 s (every command answered InternalError): each shopper gets every reply once, in order; nothing is dead-lettered", (t) =>
    throughOutage("storage", t));

  test("FerretDB itself stopped for 20 s (connections refused): each shopper gets every reply once, in order; nothing is dead-lettered", (t) =>
    throughOutage("server", t));
});

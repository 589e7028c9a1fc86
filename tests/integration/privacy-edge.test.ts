import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { type Infra, startInfra } from "@taituri/devenv";
import type { LocalIssuer } from "@taituri/oidc";
import { SpanKind, trace } from "@taituri/telemetry";
import { type FakeGraphApi, readTopic, runId, startFakeGraphApi } from "@taituri/testing/harness";
import type { Kafka } from "kafkajs";
import { spanText, startCapture } from "./support/capture.ts";
import { Shopper } from "./support/shopper.ts";
import type { Stack } from "./support/stack.ts";

/**
 * What reaches the services from outside, in URLs and in Kafka, does not leave them in spans, logs,
 * metrics or dead-letter headers: the webhook verification (its token in the query), the checkout
 * page and its pay button (the session id in the path grants payment), an operator's order lookup
 * (the order id in the path holds the shopper's id, URL-encoded), and dead letters (a record that
 * can never be applied, with the shopper's message in it; an error message naming the phone
 * number). The whole stack runs in this process with the OpenTelemetry SDK started first, as in
 * privacy.test.ts; server spans must say which route was asked, never which URL.
 */
const { exporter, processor, telemetry, logger, logLines } = startCapture("privacy-edge-test");

const run = runId();
const SECRET = "privacy-edge-secret";
const PHONE_NUMBER_ID = "PNEDGE";
// Distinctive enough that a match anywhere can only be a leak. Encoders leave digits, letters and
// dots alone, so the plain forms below also catch "%2B<number>" and "PN…%3A<number>".
const WA_ID = `4479${String(randomInt(1e8, 1e9))}`;
const USER_ID = `GB.${String(randomInt(1e9, 1e10))}${String(randomInt(1e9, 1e10))}`;
const FIRST_MESSAGE = `Quizzical kumquat ${run} for my cousin`;
const RECIPIENT = "Euphrosyne";
const ADDRESS = {
  country: "ES",
  name: "Perpetua Zumalacarregui",
  street: "Calle Quimera 77",
  city: "Villaquixote",
  postcode: "28013",
};
const DEAD_MESSAGE = `Xylophone pancake ${run} never applied`;
// The stack's WHATSAPP_VERIFY_TOKEN (support/stack.ts): a single letter, so it is looked for with
// its parameter name; a refused guess is distinctive.
const VERIFY_TOKEN = "v";
const GUESSED_TOKEN = `guessed-token-${run}`;
const CHALLENGE = `challenge-${run}-kestrel`;
const secrets = [
  WA_ID,
  `+${WA_ID}`,
  `%2B${WA_ID}`,
  `%3A${WA_ID}`,
  USER_ID,
  USER_ID.slice(3),
  `%3A${USER_ID}`,
  `verify_token=${VERIFY_TOKEN}`,
  GUESSED_TOKEN,
  CHALLENGE,
  FIRST_MESSAGE,
  "Quizzical kumquat",
  RECIPIENT,
  ADDRESS.name,
  ADDRESS.street,
  ADDRESS.city,
  DEAD_MESSAGE,
  "Xylophone pancake",
];

/** Attributes that name the caller's address; a server span keeps none of them. */
const CLIENT_IP_KEYS = [
  "client.address",
  "network.peer.address",
  "network.peer.port",
  "http.client_ip",
  "net.peer.ip",
  "net.sock.peer.addr",
];

let infra: Infra;
let graph: FakeGraphApi;
let issuer: LocalIssuer;
let stack: Stack;
let kafka: Kafka;
let kafkaApi: typeof import("@taituri/kafka");
let proto: typeof import("@taituri/proto/events");

before(async () => {
  // Imported only now, after the SDK has started, so the instrumentations see the services' libraries load.
  const { startStack } = await import("./support/stack.ts");
  const { startLocalIssuer } = await import("@taituri/oidc");
  kafkaApi = await import("@taituri/kafka");
  proto = await import("@taituri/proto/events");
  infra = await startInfra();
  graph = await startFakeGraphApi();
  issuer = await startLocalIssuer();
  stack = await startStack({
    id: `privacy-edge-${run}`,
    infra,
    graph,
    logger,
    secret: SECRET,
    generation: true,
    payment: true,
    paymentSettings: { OIDC_ISSUER_URL: issuer.url },
  });
  kafka = kafkaApi.createKafka({ ...infra.kafka.client, clientId: `privacy-edge-${run}`, logger });
  // Every service logged in to Kafka with a bearer token from its client secret: neither may show.
  for (const service of ["ingress", "conversation", "generation", "payment"] as const) {
    const clientSecret = infra.kafka.settings(service).KAFKA_OAUTH_CLIENT_SECRET;
    if (clientSecret) secrets.push(clientSecret);
  }
  // The start of every JWT whose header begins with its algorithm (ours, Kubernetes's): `{"alg`.
  secrets.push("eyJhbGci");
});

after(async () => {
  await stack?.stop();
  await graph?.close();
  await issuer?.close();
  await infra?.stop();
  await telemetry.shutdown();
});

// The shopper's browser, Meta and the operator's curl are not our services: their requests go
// inside a "visitor" span, and the fetch spans under it (which hold the URL they asked for) are left
// out of what is checked. The server spans they cause are checked.
const visitor = trace.getTracer("privacy-edge-visitor");
const visitorSpanIds = new Set<string>();
function visit(url: string, init?: RequestInit): Promise<Response> {
  return visitor.startActiveSpan("visitor", async (span) => {
    visitorSpanIds.add(span.spanContext().spanId);
    try {
      return await fetch(url, init);
    } finally {
      span.end();
    }
  });
}
const isVisitors = (span: ReadableSpan) =>
  visitorSpanIds.has(span.spanContext().spanId) || visitorSpanIds.has(span.parentSpanContext?.spanId ?? "");

const leaksIn = (text: string) => secrets.filter((secret) => text.includes(secret));

describe("privacy at the edges", { timeout: 5 * 60_000 }, () => {
  test("URLs, client addresses and dead letters leave no phone number, BSUID, token, session id or message text", async () => {
    const { Header, Records, encodeRecord, deadLetterTopic, EventProducer, topicNames } = kafkaApi;
    const webhook = stack.ingress.endpoints.webhook ?? "";
    const internal = stack.payment?.endpoints.http ?? "";

    // (a) Meta verifies the webhook: the token and a challenge in the query; a wrong guess is refused.
    const verified = await visit(
      `${webhook}?hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=${CHALLENGE}`,
    );
    assert.equal(verified.status, 200);
    assert.equal(await verified.text(), CHALLENGE);
    const refused = await visit(
      `${webhook}?hub.mode=subscribe&hub.verify_token=${GUESSED_TOKEN}&hub.challenge=${CHALLENGE}`,
    );
    assert.equal(refused.status, 403);

    // A journey to the checkout link, with the address step.
    const shopper = new Shopper({
      waId: WA_ID,
      userId: USER_ID,
      phoneNumberId: PHONE_NUMBER_ID,
      webhook: () => webhook,
      secret: SECRET,
      graph,
      wamidPrefix: run,
      timeoutMs: 45_000,
    });
    const confirm = await shopper.toConfirmation("retro", { hello: FIRST_MESSAGE, recipient: RECIPIENT });
    assert.match(confirm?.text ?? "", new RegExp(RECIPIENT), "the bot did read the name");
    await shopper.tap(confirm?.ids[0] ?? "");
    await shopper.next();
    const shown = await shopper.next(4);
    await shopper.tap(shown[3]?.ids[0] ?? "");
    await shopper.giveAddress(ADDRESS);
    assert.match((await shopper.next())[0]?.text ?? "", /Preparing your checkout/);
    const [pay] = await shopper.next();
    assert.equal(pay?.type, "cta_url");
    const link = new URL(pay?.url ?? "");
    const session = decodeURIComponent(link.pathname.split("/").at(-1) ?? "");
    assert.match(link.pathname, /^\/checkout\/[^/]+$/);
    secrets.push(session);

    // (b) The checkout page and its pay button.
    const page = await visit(link.href);
    assert.equal(page.status, 200);
    assert.match(await page.text(), new RegExp(ADDRESS.street));
    const paid = await visit(`${link.href}/pay`, { method: "POST" });
    assert.equal(paid.status, 200);
    const [confirmation] = await shopper.next();
    const orderNumber = /order number is (\w{4}-\w{4})/.exec(confirmation?.text ?? "")?.[1] ?? "";
    assert.ok(orderNumber, confirmation?.text);

    // (c) An operator looks the order up by its id (the conversation's key and a suffix),
    // URL-encoded as any client writes it, and by an id holding the phone number.
    // The payment service's default caller of its internal API.
    const token = await issuer.sign({ sub: "payment-admin", aud: "payment" });
    const auth = { authorization: `Bearer ${token}` };
    const byNumber = await visit(`${internal}/internal/orders/${orderNumber}`, { headers: auth });
    assert.equal(byNumber.status, 200);
    const { orderId } = (await byNumber.json()) as { orderId: string };
    assert.ok(orderId.startsWith(`${PHONE_NUMBER_ID}:${USER_ID}/`), orderId);
    const encodedId = encodeURIComponent(orderId);
    assert.ok(encodedId.includes("%3A") && encodedId.includes("%2F"), encodedId);
    const byId = await visit(`${internal}/internal/orders/${encodedId}`, { headers: auth });
    assert.equal(byId.status, 200);
    assert.equal(((await byId.json()) as { orderId: string }).orderId, orderId);
    const phoneId = encodeURIComponent(`${PHONE_NUMBER_ID}:+${WA_ID}/o1`);
    const byPhone = await visit(`${internal}/internal/orders/${phoneId}`, { headers: auth });
    assert.ok([400, 404].includes(byPhone.status), `no such order: ${byPhone.status}`);

    // (d) Dead letters: an inbound event with the shopper's message but no event id can never be
    // applied; a cancellation with no known reason fails with the order id (and so the phone
    // number) in its error message.
    const topics = topicNames(stack.prefix);
    const producer = new EventProducer(kafka);
    await producer.connect();
    const deadConversation = `${PHONE_NUMBER_ID}:${WA_ID}`;
    const deadEvent = encodeRecord(
      Records.inboundEvent,
      proto.inbound.InboundEvent.fromPartial({
        conversationId: deadConversation,
        business: { phoneNumberId: PHONE_NUMBER_ID },
        payload: {
          $case: "message",
          value: {
            id: `wamid.${run}.dead`,
            from: { waId: WA_ID },
            content: { $case: "text", value: { body: DEAD_MESSAGE } },
          },
        },
      }),
    );
    const cancel = encodeRecord(
      Records.cancelOrder,
      proto.payment.CancelOrder.fromPartial({
        orderId: `${deadConversation}/o9`,
        conversationId: deadConversation,
      }),
    );
    try {
      await producer.send(topics.inbound, [{ key: deadConversation, ...deadEvent }]);
      await producer.send(topics.paymentRequests, [{ key: deadConversation, ...cancel }]);
    } finally {
      await producer.disconnect();
    }
    const [deadInbound] = await readTopic(kafka, deadLetterTopic(topics.inbound), (records) =>
      records.some((r) => r.key === deadConversation),
    );
    const [deadCancel] = await readTopic(kafka, deadLetterTopic(topics.paymentRequests), (records) =>
      records.some((r) => r.key === deadConversation),
    );
    assert.ok(deadInbound && deadCancel);
    // The dead letter is the record as it was, for a replay; what we add to it names no one.
    assert.deepEqual(deadInbound.value, deadEvent.value);
    assert.equal(deadInbound.headers[Header.type], deadEvent.headers[Header.type]);
    assert.deepEqual(deadCancel.value, cancel.value);
    for (const dead of [deadInbound, deadCancel]) {
      assert.match(dead.headers[Header.dlqError] ?? "", /PermanentError/);
      const added = Object.entries(dead.headers).filter(([name]) => name.startsWith("dlq-"));
      assert.deepEqual(
        leaksIn(JSON.stringify(added)),
        [],
        `dead-letter headers leak: ${JSON.stringify(added)}`,
      );
    }

    await processor.forceFlush();
    const spans = exporter.getFinishedSpans().filter((span) => !isVisitors(span));
    assert.ok(logLines.length > 5, `log lines captured (${logLines.length})`);

    // Server spans name the route and the outcome, not the URL nor who asked.
    const serverSpans = spans.filter(
      (s) => s.kind === SpanKind.SERVER && s.attributes["http.request.method"] !== undefined,
    );
    const routeSpan = (method: string, route: string) =>
      serverSpans.find(
        (s) => s.attributes["http.request.method"] === method && s.attributes["http.route"] === route,
      );
    for (const [method, route] of [
      ["GET", "/checkout/:session"],
      ["GET", "/internal/orders/:id"],
    ] as const) {
      const span = routeSpan(method, route);
      assert.ok(span, `a server span for ${method} ${route}`);
      assert.equal(span.name, `${method} ${route}`);
      assert.equal(span.attributes["url.path"], route);
      assert.equal(span.attributes["http.response.status_code"], 200);
      assert.equal(typeof span.attributes["server.port"], "number");
    }
    const verification = serverSpans.filter(
      (s) => s.attributes["http.request.method"] === "GET" && s.attributes["url.path"] === "/webhook",
    );
    assert.equal(verification.length, 2, "the two verification requests, by their path");
    for (const span of serverSpans) {
      assert.equal(span.attributes["url.query"], undefined, `span "${span.name}" keeps no query`);
      for (const key of CLIENT_IP_KEYS)
        assert.equal(span.attributes[key], undefined, `span "${span.name}" has no ${key}`);
    }

    for (const span of spans) {
      const text = spanText(span);
      assert.deepEqual(leaksIn(text), [], `span "${span.name}" leaks: ${text}`);
    }
    for (const line of logLines) assert.deepEqual(leaksIn(line), [], `log line leaks: ${line}`);
    const metrics: string[] = [];
    for (const service of stack.services) {
      const ops = service.endpoints.ops;
      assert.ok(ops, "every service serves /metrics");
      const text = await (await fetch(`${ops}/metrics`)).text();
      assert.match(text, /# TYPE/);
      assert.deepEqual(leaksIn(text), [], `${ops}/metrics leaks`);
      metrics.push(text);
    }
    for (const topic of [topics.inbound, topics.paymentRequests])
      assert.ok(
        metrics.some((text) =>
          text
            .split("\n")
            .some((line) => line.includes(`topic="${topic}"`) && line.includes('outcome="dead_lettered"')),
        ),
        `dead letters of ${topic} counted`,
      );
  });
});

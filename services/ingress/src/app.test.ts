import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { OutgoingMessage, Publisher } from "@taituri/kafka";
import { topicNames } from "@taituri/kafka";
import { createLogger, type Logger } from "@taituri/logging";
import { Registry } from "@taituri/ops";
import { inbound } from "@taituri/proto";
import { pseudonym } from "@taituri/telemetry";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { buildIngressApp, readableReasons } from "./app.ts";

const topics = topicNames("t.");

function setup(
  publisher?: Publisher,
  bodyLimitBytes = 1024,
  logger: Logger = createLogger({ service: "test", level: "silent" }),
) {
  const sent: { topic: string; messages: OutgoingMessage[] }[] = [];
  const app = buildIngressApp({
    appSecrets: ["secret"],
    verifyToken: "verify-me",
    bodyLimitBytes,
    topics,
    publisher: publisher ?? { send: async (topic, messages) => void sent.push({ topic, messages }) },
    logger,
    registry: new Registry(),
    publishTimeoutMs: 200,
    recentIdsCapacity: 100,
  });
  return { app, sent };
}

const post = (app: ReturnType<typeof setup>["app"], body: string, signature?: string) =>
  app.inject({
    method: "POST",
    url: "/webhook",
    headers: {
      "content-type": "application/json",
      ...(signature ? { "x-hub-signature-256": signature } : {}),
    },
    payload: body,
  });

test("a signed webhook is stored, keyed by conversation, before the 200", async () => {
  const { app, sent } = setup();
  const body = JSON.stringify(textWebhook("hi", { wamid: "wamid.1", waId: "555", phoneNumberId: "PN" }));
  const response = await post(app, body, signWebhook(body, "secret"));
  assert.equal(response.statusCode, 200);
  assert.equal(sent.length, 1);
  assert.equal(sent[0]?.topic, "t.inbound.v1");
  const [message] = sent[0]?.messages ?? [];
  assert.equal(message?.key, "PN:555");
  assert.equal(inbound.InboundEvent.decode(message?.value as Uint8Array).eventId, "wamid.1");
});

test("missing, malformed or wrong signatures get 401 and nothing is stored", async () => {
  const { app, sent } = setup();
  const body = JSON.stringify(textWebhook("hi"));
  for (const signature of [undefined, "sha256=zz", signWebhook(body, "other")]) {
    const response = await post(app, body, signature);
    assert.equal(response.statusCode, 401);
    assert.doesNotMatch(response.body, /sha256=/);
  }
  assert.equal(sent.length, 0);
});

test("signed but not JSON is 400; over the limit is 413; nothing is stored", async () => {
  const { app, sent } = setup();
  assert.equal((await post(app, "{nope", signWebhook("{nope", "secret"))).statusCode, 400);
  const big = JSON.stringify({ pad: "x".repeat(2000) });
  assert.equal((await post(app, big, signWebhook(big, "secret"))).statusCode, 413);
  assert.equal(sent.length, 0);
});

test("a retry of a webhook already stored is answered without storing it again", async () => {
  const { app, sent } = setup();
  const body = JSON.stringify(textWebhook("hi", { wamid: "wamid.retry" }));
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 200);
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 200);
  assert.equal(sent.length, 1);
});

test("a Kafka that does not acknowledge in time gets a 503, and the retry is stored", async () => {
  let hang = true;
  const sent: OutgoingMessage[] = [];
  const { app } = setup({
    send: async (_topic, messages) => {
      if (hang) return new Promise(() => {});
      sent.push(...messages);
    },
  });
  const body = JSON.stringify(textWebhook("hi", { wamid: "wamid.slow" }));
  const started = Date.now();
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 503);
  assert.ok(Date.now() - started < 2000);
  hang = false;
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 200);
  assert.equal(sent.length, 1);
});

test("Kafka unavailable answers 503 so Meta retries, logging one line without the stack", async () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  class KafkaJSConnectionError extends Error {
    override readonly name = "KafkaJSConnectionError";
  }
  const { app } = setup(
    {
      send: async () => {
        throw new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:9092");
      },
    },
    1024,
    createLogger({ service: "test", destination }),
  );
  const body = JSON.stringify(textWebhook("hi"));
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 503);
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0] ?? "");
  assert.equal(line.msg, "could not store webhook events; answering 503 so Meta retries");
  assert.equal(line.reason, "error");
  assert.equal(line.error, "KafkaJSConnectionError: Connection error: connect ECONNREFUSED 127.0.0.1:9092");
  assert.doesNotMatch(lines[0] ?? "", /\\n\s+at /, "no stack");
  assert.equal(line.err, undefined);
});

test("a signed body of an unknown shape is acknowledged and dead-lettered whole", async () => {
  const { app, sent } = setup();
  const body = JSON.stringify({ object: "instagram", entry: [] });
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 200);
  const dead = sent.find((s) => s.topic === "t.inbound.v1.dlq");
  assert.equal(dead?.messages[0]?.value.toString(), body);
  assert.match(dead?.messages[0]?.headers?.["dlq-error"] ?? "", /not a WhatsApp webhook/);
});

test("the subscription handshake echoes the challenge only for the right token", async () => {
  const { app } = setup();
  const ok = await app.inject(
    "/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
  );
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.body, "1158201444");
  assert.equal(
    (await app.inject("/webhook?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1")).statusCode,
    403,
  );
  assert.equal(
    (await app.inject("/webhook?hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1")).statusCode,
    403,
  );
});

test("the dead-letter reasons of an unreadable webhook name message ids and numbers by their pseudonyms", () => {
  const wamid = "wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI5QUI=";
  const said = readableReasons([
    { reason: `message ${wamid}: neither from nor from_user_id` },
    { reason: "status 34600111222: no recipient" },
  ]);
  assert.doesNotMatch(said, /HBgLMzQ2MDAxMTEyMjIV|34600111222/);
  assert.match(said, new RegExp(`message ${pseudonym(wamid)}: neither`));
});

const inboundOf = (sent: { topic: string; messages: OutgoingMessage[] }[]) =>
  sent
    .filter((s) => s.topic === "t.inbound.v1")
    .flatMap((s) => s.messages.map((m) => inbound.InboundEvent.decode(m.value as Uint8Array)));
const deadOf = (sent: { topic: string; messages: OutgoingMessage[] }[]) =>
  sent.filter((s) => s.topic === "t.inbound.v1.dlq").flatMap((s) => s.messages);

/** One body with two messages: `good` as given, `bad` with `change` applied to a text message. */
function goodAndBad(change: (message: Record<string, unknown>) => void) {
  const json = textWebhook("good", { wamid: "wamid.good", waId: "555" });
  const value = json.entry[0]?.changes[0]?.value as { messages: Record<string, unknown>[] } | undefined;
  const messages = value?.messages ?? [];
  const bad: Record<string, unknown> = { ...messages[0], id: "wamid.bad", text: { body: "bad" } };
  change(bad);
  messages.push(bad);
  return JSON.stringify(json);
}

test("a message whose timestamp is out of range is dead-lettered with the reason; its neighbour is stored; 200", async () => {
  const { app, sent } = setup(undefined, 64 * 1024);
  const body = goodAndBad((m) => {
    m.timestamp = "100000000000000000";
  });
  const response = await post(app, body, signWebhook(body, "secret"));
  assert.equal(response.statusCode, 200);
  assert.deepEqual(
    inboundOf(sent).map((e) => e.eventId),
    ["wamid.good"],
  );
  assert.match(deadOf(sent)[0]?.headers?.["dlq-error"] ?? "", /timestamp/);
});

test("a message of a shape we cannot read does not cost its neighbour: stored, dead-lettered, 200", async () => {
  const { app, sent } = setup(undefined, 64 * 1024);
  const body = goodAndBad((m) => {
    m.type = "location";
    m.location = { latitude: "north", longitude: 1 };
  });
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 200);
  assert.deepEqual(
    inboundOf(sent).map((e) => e.eventId),
    ["wamid.good"],
  );
  assert.match(deadOf(sent)[0]?.headers?.["dlq-error"] ?? "", /latitude/);
});

test("a signed body nested too deep is dead-lettered whole with the reason, never a 5xx", async () => {
  const { app, sent } = setup(undefined, 256 * 1024);
  const json = textWebhook("hi", { wamid: "wamid.deep" });
  const value = json.entry[0]?.changes[0]?.value as Record<string, unknown>;
  value.errors = [{ code: 131000, title: "x", error_data: {} }];
  // JSON.stringify recurses; this many levels overflow it, so the body is written by hand.
  const body = JSON.stringify(json).replace(
    '"error_data":{}',
    `"error_data":${'{"n":'.repeat(20_000)}{}${"}".repeat(20_000)}`,
  );
  const response = await post(app, body, signWebhook(body, "secret"));
  assert.equal(response.statusCode, 200);
  assert.deepEqual(inboundOf(sent), []);
  assert.match(deadOf(sent)[0]?.headers?.["dlq-error"] ?? "", /deeper than/);
});

test("a message too large to store is dead-lettered with the reason; 200", async () => {
  const { app, sent } = setup(undefined, 3 * 1024 * 1024);
  const body = goodAndBad((m) => {
    m.text = { body: "x".repeat(2 * 1024 * 1024) };
  });
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 200);
  assert.deepEqual(
    inboundOf(sent).map((e) => e.eventId),
    ["wamid.good"],
  );
  assert.match(deadOf(sent)[0]?.headers?.["dlq-error"] ?? "", /text\.body: Too big/);
});

test("an event whose fields are each within bounds but whose record would be too large is dead-lettered; 200", async () => {
  const { app, sent } = setup(undefined, 3 * 1024 * 1024);
  const phones = Array.from({ length: 900 }, (_, i) => ({ phone: `${i}`.padEnd(1000, "0") }));
  const body = goodAndBad((m) => {
    m.type = "contacts";
    m.contacts = [{ name: { formatted_name: "Many" }, phones }];
  });
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 200);
  assert.deepEqual(
    inboundOf(sent).map((e) => e.eventId),
    ["wamid.good"],
  );
  assert.match(
    deadOf(sent)[0]?.headers?.["dlq-error"] ?? "",
    /event \S+: \d+ bytes encoded, over the 524288/,
  );
});

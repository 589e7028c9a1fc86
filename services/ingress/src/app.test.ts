import assert from "node:assert/strict";
import { test } from "node:test";
import type { OutgoingMessage, Publisher } from "@taituri/kafka";
import { topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { Registry } from "@taituri/ops";
import { inbound } from "@taituri/proto";
import { pseudonym } from "@taituri/telemetry";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { buildIngressApp, readableReasons } from "./app.ts";

const topics = topicNames("t.");

function setup(publisher?: Publisher) {
  const sent: { topic: string; messages: OutgoingMessage[] }[] = [];
  const app = buildIngressApp({
    appSecrets: ["secret"],
    verifyToken: "verify-me",
    bodyLimitBytes: 1024,
    topics,
    publisher: publisher ?? { send: async (topic, messages) => void sent.push({ topic, messages }) },
    logger: createLogger({ service: "test", level: "silent" }),
    registry: new Registry(),
    checks: {},
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

test("Kafka unavailable answers 503 so Meta retries", async () => {
  const { app } = setup({
    send: async () => {
      throw new Error("broker down");
    },
  });
  const body = JSON.stringify(textWebhook("hi"));
  assert.equal((await post(app, body, signWebhook(body, "secret"))).statusCode, 503);
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

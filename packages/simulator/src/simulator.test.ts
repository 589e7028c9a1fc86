import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import { schema as generationSchema } from "@taituri/generation-service/config";
import { buildPrompt, parsePromptTemplates } from "@taituri/generation-service/prompt";
import { type Simulator, startSimulator } from "./index.ts";
import type { ChatMessage, Shopper } from "./types.ts";

const SECRET = "test-app-secret";
const TOKEN = "test-access-token";
const NUMBER = {
  phoneNumberId: "111222333",
  displayPhoneNumber: "15550001234",
  wabaId: "999888777",
  name: "Test shop",
};

/** Ingress's place: records each webhook and answers with the next scripted status (200 after them). */
async function startReceiver() {
  const received: { headers: IncomingHttpHeaders; raw: string; body: WebhookBody }[] = [];
  const script: number[] = [];
  const server = createServer(async (request, response) => {
    let raw = "";
    for await (const chunk of request) raw += chunk;
    received.push({ headers: request.headers, raw, body: JSON.parse(raw) });
    response.statusCode = script.shift() ?? 200;
    response.end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`,
    received,
    script,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface WireMessage {
  id?: string;
  type?: string;
  from?: string;
  from_user_id?: string;
  text?: { body: string };
  context?: { from: string; id: string };
  interactive?: unknown;
  audio?: { id: string; mime_type: string; sha256: string; voice?: boolean };
  sticker?: { id: string; mime_type: string };
}

interface WebhookBody {
  entry: {
    id: string;
    changes: {
      value: {
        metadata: { phone_number_id: string };
        contacts?: { wa_id?: string; user_id?: string; profile: { name: string } }[];
        messages?: WireMessage[];
        statuses?: {
          id: string;
          status: string;
          recipient_id?: string;
          recipient_user_id?: string;
          biz_opaque_callback_data?: string;
        }[];
      };
    }[];
  }[];
}

/** A Graph API answer: Meta's send answer, or its error. */
interface GraphBody {
  messaging_product?: string;
  contacts?: { input: string; wa_id?: string; user_id?: string }[];
  messages?: { id: string }[];
  error?: {
    message: string;
    type: string;
    code: number;
    error_subcode?: number;
    error_data?: { messaging_product: string; details: string };
    fbtrace_id: string;
  };
}

const changeValue = (body: WebhookBody) => body.entry[0]?.changes[0]?.value;

async function until<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`never happened: ${what}`);
}

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let sim: Simulator;

const api = async (method: string, path: string, body?: unknown) => {
  const response = await fetch(`${sim.url}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

const graph = async (path: string, body: unknown, token: string | undefined = TOKEN) => {
  const response = await fetch(`${sim.graphUrl}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as GraphBody };
};

const newShopper = async (who: { name: string; waId?: string; userId?: string }) =>
  (await api("POST", "/sim/api/shoppers", who)).body as unknown as Shopper;

const write = async (shopper: Shopper, message: Record<string, unknown>) =>
  (await api("POST", `/sim/api/shoppers/${shopper.id}/messages`, message)).body as unknown as ChatMessage;

const chat = async (shopper: Shopper) => {
  const state = (await api("GET", "/sim/api/state")).body as { shoppers: Shopper[] };
  return state.shoppers.find((s) => s.id === shopper.id)?.messages ?? [];
};

const text = (to: Record<string, string>, body: string) => ({
  messaging_product: "whatsapp",
  recipient_type: "individual",
  ...to,
  type: "text",
  text: { body },
});

/** The exact shape of a Cloud API error: HTTP status, code, type, message, details, fbtrace_id, no subcode. */
function assertMetaError(
  answer: { status: number; body: GraphBody },
  expected: {
    status: number;
    code: number;
    message: string;
    details?: RegExp;
    type?: string;
    subcode?: number;
  },
) {
  assert.equal(answer.status, expected.status);
  const error = answer.body.error;
  assert.ok(error);
  assert.deepEqual(Object.keys(answer.body), ["error"]);
  assert.equal(error.code, expected.code);
  assert.equal(error.type, expected.type ?? "OAuthException");
  assert.equal(error.message, expected.message);
  assert.match(error.fbtrace_id, /^[\w-]{23}$/);
  assert.equal(error.error_subcode, expected.subcode);
  if (expected.details) {
    assert.equal(error.error_data?.messaging_product, "whatsapp");
    assert.match(error.error_data?.details ?? "", expected.details);
  } else {
    assert.equal(error.error_data, undefined);
  }
}

before(async () => {
  receiver = await startReceiver();
});
after(async () => {
  await receiver.close();
});

beforeEach(async () => {
  await sim?.close();
  receiver.received.length = 0;
  receiver.script.length = 0;
  sim = await startSimulator({
    webhookUrl: receiver.url,
    appSecret: SECRET,
    accessToken: TOKEN,
    businessNumbers: [NUMBER],
    jaegerUrl: "http://jaeger.test:16686",
    retrySchedule: [20, 20],
    webhookTimeoutMs: 2000,
    authenticationTemplates: ["login_code"],
    throughput: { perNumberPerSecond: 80, pairBurst: 45, pairIntervalMs: 6000 },
    statusDelaysMs: { sent: 0, delivered: 0, read: 0 },
  });
});
after(async () => {
  await sim?.close();
});

describe("towards ingress", () => {
  test("a shopper's message is a signed webhook, retried after a 500, in a trace the UI links to", async () => {
    receiver.script.push(500);
    const ana = await newShopper({ name: "Ana", waId: "34600111222" });
    const sent = await write(ana, { type: "text", text: "I want a gift" });
    assert.equal(sent.from, "shopper");
    assert.equal(sent.status, "sending");
    const [message] = await until("the delivered message", async () => {
      const messages = await chat(ana);
      return messages[0]?.status === "delivered" && messages;
    });
    assert.equal(message?.attempts, 2);
    assert.equal(receiver.received.length, 2);
    const [first, second] = receiver.received;
    assert.equal(first?.raw, second?.raw);
    for (const { headers, raw } of receiver.received) {
      assert.equal(
        headers["x-hub-signature-256"],
        `sha256=${createHmac("sha256", SECRET).update(raw).digest("hex")}`,
      );
      const traceId = /^00-([\da-f]{32})-[\da-f]{16}-01$/.exec(String(headers.traceparent))?.[1];
      assert.ok(traceId);
      assert.equal(message?.traceUrl, `http://jaeger.test:16686/api/traces/${traceId}`);
    }
    const value = changeValue(first?.body as WebhookBody);
    assert.equal(value?.metadata.phone_number_id, NUMBER.phoneNumberId);
    assert.deepEqual(value?.contacts, [{ profile: { name: "Ana" }, wa_id: "34600111222" }]);
    assert.equal(value?.messages?.[0]?.from, "34600111222");
    assert.deepEqual(value?.messages?.[0]?.text, { body: "I want a gift" });
    assert.equal(value?.messages?.[0]?.id, sent.id);
    const log = (await api("GET", "/sim/api/state")).body.log as { kind: string; text: string }[];
    assert.ok(
      log.some((line) => line.kind === "webhook" && /attempt 1: HTTP 500.*will retry/.test(line.text)),
    );
    assert.ok(log.some((line) => line.kind === "webhook" && /attempt 2: HTTP 200/.test(line.text)));
  });

  test("a webhook never acknowledged fails once the retries run out", async () => {
    receiver.script.push(503, 503, 503);
    const ana = await newShopper({ name: "Ana", waId: "34600111222" });
    await write(ana, { type: "text", text: "hello" });
    const failed = await until("the failed message", async () => {
      const [message] = await chat(ana);
      return message?.status === "failed" && message;
    });
    assert.equal(failed.attempts, 3);
    assert.equal(receiver.received.length, 3);
  });

  test("'deliver 3 times, concurrently' sends the same webhook three times", async () => {
    await api("PUT", "/sim/api/toggles", { deliver: 3, concurrent: true });
    const ana = await newShopper({ name: "Ana", waId: "34600111222" });
    const sent = await write(ana, { type: "text", text: "hi" });
    await until("three deliveries", () => receiver.received.length === 3);
    assert.deepEqual(
      receiver.received.map((r) => changeValue(r.body)?.messages?.[0]?.id),
      [sent.id, sent.id, sent.id],
    );
    assert.equal(new Set(receiver.received.map((r) => r.raw)).size, 1);
  });

  test("a BSUID-only shopper writes with from_user_id and no phone number; replies carry context", async () => {
    const kerry = await newShopper({ name: "Kerry", userId: "US.13491208655302741918" });
    await write(kerry, { type: "text", text: "hi" });
    await until("the webhook", () => receiver.received.length === 1);
    const message = changeValue(receiver.received[0]?.body as WebhookBody)?.messages?.[0];
    assert.equal(message?.from, undefined);
    assert.equal(message?.from_user_id, "US.13491208655302741918");
    const sent = await graph(`/${NUMBER.phoneNumberId}/messages`, {
      messaging_product: "whatsapp",
      recipient: "US.13491208655302741918",
      type: "interactive",
      interactive: {
        type: "button",
        body: { text: "Which theme?" },
        action: { buttons: [{ type: "reply", reply: { id: "theme:love", title: "Love" } }] },
      },
    });
    assert.equal(sent.status, 200);
    assert.deepEqual(sent.body.contacts, [
      { input: "US.13491208655302741918", user_id: "US.13491208655302741918" },
    ]);
    const wamid = sent.body.messages?.[0]?.id;
    await write(kerry, { type: "button_reply", replyTo: wamid, id: "theme:love", title: "Love" });
    const reply = await until("the reply's webhook", () =>
      receiver.received.map((r) => changeValue(r.body)?.messages?.[0]).find((m) => m?.type === "interactive"),
    );
    assert.deepEqual(reply.context, { from: NUMBER.displayPhoneNumber, id: wamid });
    assert.deepEqual(reply.interactive, {
      type: "button_reply",
      button_reply: { id: "theme:love", title: "Love" },
    });
    const refused = await api("POST", `/sim/api/shoppers/${kerry.id}/messages`, {
      type: "button_reply",
      replyTo: wamid,
      id: "theme:nope",
      title: "Nope",
    });
    assert.equal(refused.status, 400);
  });

  test("voice notes, images and stickers carry media ids the Graph API serves with the bearer", async () => {
    const ana = await newShopper({ name: "Ana", waId: "34600111222" });
    await write(ana, { type: "voice" });
    await write(ana, { type: "sticker" });
    await until("two webhooks", () => receiver.received.length === 2);
    const [voice, sticker] = receiver.received.map((r) => changeValue(r.body)?.messages?.[0]);
    assert.equal(voice?.type, "audio");
    assert.equal(voice?.audio?.voice, true);
    assert.equal(voice?.audio?.mime_type, "audio/ogg; codecs=opus");
    assert.equal(sticker?.sticker?.mime_type, "image/webp");
    const lookup = await fetch(`${sim.graphUrl}/${voice?.audio?.id}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const info = (await lookup.json()) as { id: string; url: string; sha256: string };
    assert.equal(info.id, voice?.audio?.id);
    assert.equal(info.sha256, voice?.audio?.sha256);
    const download = await fetch(info.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(download.status, 200);
    assert.equal(download.headers.get("content-type"), "audio/ogg; codecs=opus");
    assert.equal(
      Buffer.from(await download.arrayBuffer())
        .subarray(0, 4)
        .toString("latin1"),
      "OggS",
    );
    assert.equal((await fetch(info.url)).status, 401);
  });
});

describe("towards the dispatcher: sends and their statuses", () => {
  test("a send is answered as Meta answers, shown in the chat, and followed by sent, delivered and read", async () => {
    const ana = await newShopper({ name: "Ana", waId: "34600111222" });
    await write(ana, { type: "text", text: "hi" });
    await until("the webhook", () => receiver.received.length === 1);
    await api("POST", `/sim/api/shoppers/${ana.id}/read`);
    const sent = await graph(`/${NUMBER.phoneNumberId}/messages`, text({ to: "34600111222" }, "*Hello* Ana"));
    assert.equal(sent.status, 200);
    assert.deepEqual(Object.keys(sent.body), ["messaging_product", "contacts", "messages"]);
    assert.deepEqual(sent.body.contacts, [{ input: "34600111222", wa_id: "34600111222" }]);
    const wamid = sent.body.messages?.[0]?.id;
    assert.match(wamid ?? "", /^wamid\./);
    const statuses = await until("three statuses", () => {
      const all = receiver.received.flatMap((r) => changeValue(r.body)?.statuses ?? []);
      return all.length === 3 && all;
    });
    assert.deepEqual(
      statuses.map((s) => [s.id, s.status, s.recipient_id]),
      [
        [wamid, "sent", "34600111222"],
        [wamid, "delivered", "34600111222"],
        [wamid, "read", "34600111222"],
      ],
    );
    // The statuses continue the dispatcher's trace.
    assert.ok(
      receiver.received
        .filter((r) => changeValue(r.body)?.statuses)
        .every((r) => String(r.headers.traceparent).startsWith("00-0af7651916cd43dd8448eb211c80319c-")),
    );
    const [, bot] = await chat(ana);
    assert.equal(bot?.from, "bot");
    assert.equal(bot?.text, "*Hello* Ana");
    assert.equal(bot?.status, "read");
    assert.equal(bot?.traceUrl, "http://jaeger.test:16686/api/traces/0af7651916cd43dd8448eb211c80319c");
  });

  test("a send's biz_opaque_callback_data comes back in each of its statuses, as Meta echoes it", async () => {
    const noor = await newShopper({ name: "Noor", waId: "34600111444" });
    await write(noor, { type: "text", text: "hi" });
    const before = receiver.received.length;
    const sent = await graph(`/${NUMBER.phoneNumberId}/messages`, {
      ...text({ to: "34600111444" }, "Hello"),
      biz_opaque_callback_data: "wamid.IN:0",
    });
    assert.equal(sent.status, 200);
    const wamid = sent.body.messages?.[0]?.id;
    const statuses = await until("sent and delivered", () => {
      const mine = receiver.received
        .slice(before)
        .flatMap((r) => changeValue(r.body)?.statuses ?? [])
        .filter((s) => s.id === wamid);
      return mine.length >= 2 && mine;
    });
    assert.deepEqual(
      statuses.map((s) => s.biz_opaque_callback_data),
      statuses.map(() => "wamid.IN:0"),
    );
    const refused = await graph(`/${NUMBER.phoneNumberId}/messages`, {
      ...text({ to: "34600111444" }, "Hello"),
      biz_opaque_callback_data: "x".repeat(513),
    });
    assert.equal(refused.status, 400);
  });

  test("a BSUID shopper's statuses name the recipient by recipient_user_id", async () => {
    const kerry = await newShopper({ name: "Kerry", userId: "US.1234567890" });
    await write(kerry, { type: "text", text: "hi" });
    await until("the webhook", () => receiver.received.length === 1);
    const sent = await graph(`/${NUMBER.phoneNumberId}/messages`, text({ recipient: "US.1234567890" }, "Hi"));
    assert.equal(sent.status, 200);
    const status = await until("a status", () =>
      receiver.received
        .flatMap((r) => changeValue(r.body)?.statuses ?? [])
        .find((s) => s.status === "delivered"),
    );
    assert.equal(status.recipient_user_id, "US.1234567890");
    assert.equal(status.recipient_id, undefined);
  });

  test("an image uploaded as multipart is sent by id and shown from the simulator's media", async () => {
    const ana = await newShopper({ name: "Ana", waId: "34600111222" });
    await write(ana, { type: "text", text: "hi" });
    const png = Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
      "base64",
    );
    const form = new FormData();
    form.set("messaging_product", "whatsapp");
    form.set("type", "image/png");
    form.set("file", new Blob([png], { type: "image/png" }), "design.png");
    const upload = await fetch(`${sim.graphUrl}/${NUMBER.phoneNumberId}/media`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: form,
    });
    assert.equal(upload.status, 200);
    const { id } = (await upload.json()) as { id: string };
    assert.match(id, /^\d{16}$/);
    const sent = await graph(`/${NUMBER.phoneNumberId}/messages`, {
      messaging_product: "whatsapp",
      to: "34600111222",
      type: "image",
      image: { id, caption: "Design 1" },
    });
    assert.equal(sent.status, 200);
    const [, bot] = await chat(ana);
    assert.equal(bot?.imageUrl, `/sim/media/${id}`);
    assert.equal(bot?.caption, "Design 1");
    const served = await fetch(`${sim.url}${bot?.imageUrl}`);
    assert.deepEqual(Buffer.from(await served.arrayBuffer()), png);
  });
});

describe("towards the dispatcher: Meta's errors, each in its exact shape", () => {
  let ana: Shopper;
  beforeEach(async () => {
    ana = await newShopper({ name: "Ana", waId: "34600111222" });
    await write(ana, { type: "text", text: "hi" });
  });
  const send = (body: unknown, token?: string) => graph(`/${NUMBER.phoneNumberId}/messages`, body, token);

  test("100 Invalid parameter: text over 4096, more than 3 buttons, a title over 20", async () => {
    assertMetaError(await send(text({ to: "34600111222" }, "x".repeat(4097))), {
      status: 400,
      code: 100,
      message: "(#100) Invalid parameter",
      details: /^Param text\['body'\] must be at most 4096 characters long\.$/,
    });
    const buttons = (titles: string[]) => ({
      messaging_product: "whatsapp",
      to: "34600111222",
      type: "interactive",
      interactive: {
        type: "button",
        body: { text: "Pick" },
        action: { buttons: titles.map((title, i) => ({ type: "reply", reply: { id: `b${i}`, title } })) },
      },
    });
    assertMetaError(await send(buttons(["a", "b", "c", "d"])), {
      status: 400,
      code: 100,
      message: "(#100) Invalid parameter",
      details: /buttons'\] must contain at most 3 elements/,
    });
    assertMetaError(await send(buttons(["a title of 21 chars.."])), {
      status: 400,
      code: 100,
      message: "(#100) Invalid parameter",
      details: /\['title'\] must be at most 20 characters long/,
    });
    assert.equal((await chat(ana)).length, 1, "nothing refused reaches the chat");
  });

  test("190 without the bearer or with another token: HTTP 401", async () => {
    for (const token of [undefined, "someone-elses-token"])
      assertMetaError(await send(text({ to: "34600111222" }, "hi"), token ?? ""), {
        status: 401,
        code: 190,
        message: "Invalid OAuth access token - Cannot parse access token",
      });
  });

  test("100 with subcode 33 for a phone number id that is not the business's", async () => {
    assertMetaError(await graph("/404404404/messages", text({ to: "34600111222" }, "hi")), {
      status: 400,
      code: 100,
      type: "GraphMethodException",
      subcode: 33,
      message:
        "Unsupported post request. Object with ID '404404404' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
    });
  });

  test("131047 outside the 24-hour window: a shopper who never wrote, the clock 25 h on, or the toggle", async () => {
    const reEngagement = {
      status: 400,
      code: 131047,
      message: "(#131047) Re-engagement message",
      details: /more than 24 hours have passed since the customer last replied/,
    };
    assertMetaError(await send(text({ to: "34699999999" }, "hi")), reEngagement);
    assert.equal((await send(text({ to: "34600111222" }, "hi"))).status, 200);
    await api("POST", "/sim/api/clock/jump", { ms: 3 * 3600 * 1000 });
    assert.equal((await send(text({ to: "34600111222" }, "three hours later"))).status, 200);
    await api("POST", "/sim/api/clock/jump", { ms: 22 * 3600 * 1000 });
    assertMetaError(await send(text({ to: "34600111222" }, "25 hours later")), reEngagement);
    const template = {
      messaging_product: "whatsapp",
      to: "34600111222",
      type: "template",
      template: { name: "order_update", language: { code: "en" } },
    };
    assert.equal((await send(template)).status, 200, "a template goes outside the window");
    await write(ana, { type: "text", text: "back" });
    assert.equal((await send(text({ to: "34600111222" }, "hi again"))).status, 200);
    await api("PUT", "/sim/api/toggles", { windowClosed: true });
    assertMetaError(await send(text({ to: "34600111222" }, "hi")), reEngagement);
  });

  test("131062 for an authentication template to a BSUID; the same to the phone number goes", async () => {
    const template = (to: Record<string, string>) => ({
      messaging_product: "whatsapp",
      ...to,
      type: "template",
      template: { name: "login_code", language: { code: "en_US" } },
    });
    assertMetaError(await send(template({ recipient: "US.13491208655302741918" })), {
      status: 400,
      code: 131062,
      message: "(#131062) Business-scoped User ID (BSUID) recipients are not supported for this message",
      details: /phone number instead/,
    });
    assert.equal((await send(template({ to: "34600111222" }))).status, 200);
  });

  test("130429 over 80 messages a second from one number, and with the rate-limit toggle", async () => {
    const rateLimit = {
      status: 400,
      code: 130429,
      message: "(#130429) Rate limit hit",
      details: /too many messages sent from this phone number in a short period of time/,
    };
    await api("PUT", "/sim/api/toggles", { rateLimit: true });
    assertMetaError(await send(text({ to: "34600111222" }, "hi")), rateLimit);
    await api("PUT", "/sim/api/toggles", { rateLimit: false });
    // 80 shoppers, one message each, then an 81st within the same second (the test's sends take
    // well under a second, and the limit counts the last second of sends).
    const shoppers = await Promise.all(
      Array.from({ length: 81 }, (_, i) =>
        newShopper({ name: `S${i}`, waId: `3460020${String(i).padStart(4, "0")}` }),
      ),
    );
    await Promise.all(shoppers.map((s) => write(s, { type: "text", text: "hi" })));
    const answers = await Promise.all(shoppers.map((s) => send(text({ to: s.waId ?? "" }, "hi"))));
    const refused = answers.filter((a) => a.status !== 200);
    assert.ok(refused.length >= 1, "at least the 81st is refused");
    for (const answer of refused) assertMetaError(answer, rateLimit);
  });

  test("131056 for one pair sent to faster than Meta allows", async () => {
    await sim.close();
    sim = await startSimulator({
      webhookUrl: receiver.url,
      appSecret: SECRET,
      accessToken: TOKEN,
      businessNumbers: [NUMBER],
      throughput: { perNumberPerSecond: 80, pairBurst: 2, pairIntervalMs: 60_000 },
      statusDelaysMs: { sent: 0, delivered: 0, read: 0 },
    });
    ana = await newShopper({ name: "Ana", waId: "34600111222" });
    await write(ana, { type: "text", text: "hi" });
    assert.equal((await send(text({ to: "34600111222" }, "1"))).status, 200);
    assert.equal((await send(text({ to: "34600111222" }, "2"))).status, 200);
    assertMetaError(await send(text({ to: "34600111222" }, "3")), {
      status: 400,
      code: 131056,
      message: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
      details: /too many messages sent from this phone number to the same phone number/,
    });
    const bob = await newShopper({ name: "Bob", waId: "34600333444" });
    await write(bob, { type: "text", text: "hi" });
    assert.equal((await send(text({ to: "34600333444" }, "another pair"))).status, 200);
  });
});

describe("the image provider", () => {
  const templates = parsePromptTemplates(
    JSON.parse(readFileSync(generationSchema.shape.PROMPTS_FILE.parse(undefined), "utf8")),
  );
  const prompt = buildPrompt(templates, {
    roundId: "r1",
    recipient: "Rosa",
    theme: "birthday",
    style: "retro",
    productId: "mug-11oz",
  });
  const generate = (signal?: AbortSignal) =>
    fetch(`${sim.openaiBaseUrl}/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer local-openai-key" },
      body: JSON.stringify({ model: "gpt-image-1", prompt, n: 2, size: "1024x1024", user: "r1" }),
      ...(signal ? { signal } : {}),
    });

  test("draws the designs with the local renderer, as OpenAI's b64_json images", async () => {
    const response = await generate();
    assert.equal(response.status, 200);
    const body = (await response.json()) as { created: number; data: { b64_json: string }[] };
    assert.equal(body.data.length, 2);
    for (const image of body.data)
      assert.equal(Buffer.from(image.b64_json, "base64").subarray(1, 4).toString("latin1"), "PNG");
  });

  test("fails with OpenAI's 500 shape, or never answers, as the toggle says", async () => {
    await api("PUT", "/sim/api/toggles", { image: "fail" });
    const failed = await generate();
    assert.equal(failed.status, 500);
    assert.deepEqual(await failed.json(), {
      error: {
        message: "The server had an error while processing your request. Sorry about that!",
        type: "server_error",
        param: null,
        code: null,
      },
    });
    await api("PUT", "/sim/api/toggles", { image: "timeout" });
    const caller = new AbortController();
    const hanging = generate(caller.signal);
    await until("the hanging request in the log", async () =>
      ((await api("GET", "/sim/api/state")).body.log as { text: string }[]).some((l) =>
        /no answer/.test(l.text),
      ),
    );
    caller.abort();
    await assert.rejects(hanging, { name: "AbortError" });
  });

  test("a wrong key is refused with OpenAI's 401", async () => {
    const response = await fetch(`${sim.openaiBaseUrl}/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer sk-wrong" },
      body: JSON.stringify({ prompt, n: 1 }),
    });
    assert.equal(response.status, 401);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, "invalid_api_key");
  });
});

describe("the UI's API", () => {
  test("state, toggles, clock and errors", async () => {
    const state = (await api("GET", "/sim/api/state")).body;
    assert.deepEqual(state.businessNumbers, [
      {
        phoneNumberId: NUMBER.phoneNumberId,
        displayPhoneNumber: NUMBER.displayPhoneNumber,
        name: "Test shop",
      },
    ]);
    assert.deepEqual(state.toggles, {
      deliver: 1,
      concurrent: false,
      ackDelayMs: 0,
      image: "ok",
      rateLimit: false,
      windowClosed: false,
    });
    assert.deepEqual(state.jaeger, { url: "http://jaeger.test:16686", ui: false });
    assert.deepEqual((await api("PUT", "/sim/api/toggles", { deliver: 2, ackDelayMs: 50 })).body, {
      deliver: 2,
      concurrent: false,
      ackDelayMs: 50,
      image: "ok",
      rateLimit: false,
      windowClosed: false,
    });
    assert.deepEqual((await api("POST", "/sim/api/clock/jump", { ms: 10_800_000 })).body, {
      offsetMs: 10_800_000,
    });
    assert.deepEqual((await api("GET", "/sim/api/clock")).body, { offsetMs: 10_800_000 });
    const log = (await api("GET", "/sim/api/state")).body.log as { kind: string; text: string }[];
    assert.deepEqual(
      log.map((l) => [l.kind, l.text]),
      [
        ["toggle", "deliver each webhook 2 times"],
        ["toggle", "Graph API answers after 50 ms"],
        ["clock", "clock +3 h (now 3 h ahead)"],
      ],
    );
    assert.deepEqual(await api("PUT", "/sim/api/toggles", { deliver: 4 }), {
      status: 400,
      body: { error: "toggles.deliver: 1, 2 or 3" },
    });
    assert.equal((await api("POST", "/sim/api/shoppers", { name: "Nobody" })).status, 400);
    assert.equal((await api("POST", "/sim/api/shoppers", { name: "X", userId: "not a bsuid" })).status, 400);
    assert.equal(
      (await api("POST", "/sim/api/shoppers/s999/messages", { type: "text", text: "hi" })).status,
      404,
    );
  });

  test("server-sent events tell of shoppers, messages and their status changes", async () => {
    const events: { event: string; data: { message?: ChatMessage } }[] = [];
    const controller = new AbortController();
    const response = await fetch(`${sim.url}/sim/api/events`, { signal: controller.signal });
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
        }
      }
    })().catch(() => undefined);
    const ana = await newShopper({ name: "Ana", waId: "34600111222" });
    const sent = await write(ana, { type: "location", latitude: 40.4, longitude: -3.7, name: "Madrid" });
    await until("the delivered message event", () =>
      events.find(
        (e) =>
          e.event === "message" && e.data.message?.id === sent.id && e.data.message.status === "delivered",
      ),
    );
    assert.deepEqual(events[0], {
      event: "shopper",
      data: { id: ana.id, name: "Ana", waId: "34600111222", phoneNumberId: NUMBER.phoneNumberId },
    });
    assert.ok(events.some((e) => e.event === "log"));
    controller.abort();
    await reading;
  });

  test("close() ends open event streams: a browser left on the page does not keep it waiting", {
    timeout: 10_000,
  }, async () => {
    const own = await startSimulator({
      webhookUrl: "http://127.0.0.1:9/webhook",
      appSecret: SECRET,
      businessNumbers: [NUMBER],
    });
    const response = await fetch(`${own.url}/sim/api/events`);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await own.close();
    // The stream ends (or breaks) with the server: the page's EventSource then reconnects.
    await reader.read().catch(() => undefined);
  });
});

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import type { OutgoingMessage } from "@taituri/kafka";
import { topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { Registry } from "@taituri/ops";
import { inbound } from "@taituri/proto";
import { messageWebhook, signWebhook } from "@taituri/testing/whatsapp";
import fc from "fast-check";
import { buildIngressApp } from "./app.ts";
import { limits } from "./domain/webhook.ts";

/**
 * Hostile webhooks against the app itself (Fastify's `inject`, an in-memory publisher): whatever
 * is thrown at it, no forgery is stored and nothing gets a 5xx. 100,000 runs take about 30 s
 * on a developer's machine; the count is the bar, not a benchmark.
 */
const RUNS = 100_000;
const SECRET = "the-app-secret";
const BODY_LIMIT = 64 * 1024;

const topics = topicNames("fuzz.");

function setup() {
  const sent: { topic: string; messages: OutgoingMessage[] }[] = [];
  const app = buildIngressApp({
    appSecrets: [SECRET],
    verifyToken: "verify-me",
    bodyLimitBytes: BODY_LIMIT,
    topics,
    publisher: { send: async (topic, messages) => void sent.push({ topic, messages }) },
    logger: createLogger({ service: "fuzz", level: "silent" }),
    registry: new Registry(),
    publishTimeoutMs: 5000,
    recentIdsCapacity: 10_000,
  });
  const stored = () => sent.filter((s) => s.topic === topics.inbound).flatMap((s) => s.messages);
  return { app, stored };
}

/** Strings a shopper may type, operator-shaped ones among them. */
const shopperText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom("$where", "$gt", '{"$gt": ""}', "$ne", "a.b", "$", "__proto__", "constructor"),
);

/** A plausible message webhook: what a forger would start from. */
const webhook = fc
  .record({
    wamid: fc.string({ minLength: 1, maxLength: 30 }).map((s) => `wamid.${s}`),
    waId: fc.stringMatching(/^[0-9]{6,15}$/),
    text: shopperText,
    name: shopperText,
  })
  .map(({ wamid, waId, text, name }) =>
    JSON.stringify(
      messageWebhook(
        { type: "text", text: { body: text } },
        { wamid, waId, profileName: name, timestamp: 1_700_000_000 },
      ),
    ),
  );

/** Any JSON at all, and plausible webhooks, as the bytes a forger sends. */
const body = fc.oneof(webhook, fc.json({ maxDepth: 4 }), fc.string({ maxLength: 200 }));

/** A body nested deeper than the bound, up to thousands of levels, of objects or arrays. */
const deepBody = fc
  .record({ levels: fc.integer({ min: limits.depth + 1, max: 5000 }), arrays: fc.boolean(), inner: webhook })
  .map(({ levels, arrays, inner }) => {
    const [open, close] = arrays ? ["[", "]"] : ['{"n":', "}"];
    const payload = JSON.parse(inner) as { entry: { changes: { value: Record<string, unknown> }[] }[] };
    const value = payload.entry[0]?.changes[0]?.value;
    if (value) value.errors = [{ code: 1, error_data: "DEEP" }];
    return JSON.stringify(payload).replace('"DEEP"', `${open.repeat(levels)}0${close.repeat(levels)}`);
  });

const hex = fc.stringMatching(/^[0-9a-f]{64}$/);

type Attack =
  | { kind: "forged"; body: string; signature: string | undefined }
  | { kind: "truncated"; body: string; signature: string }
  | { kind: "other key"; body: string; signature: string }
  | { kind: "replayed"; index: number }
  | { kind: "oversized"; body: string; signature: string }
  | { kind: "deep"; body: string; signature: string; signed: boolean };

const attack: fc.Arbitrary<Attack> = fc.oneof(
  // No signature, a made-up one, or a header that is not even the right shape.
  fc.record({
    kind: fc.constant("forged" as const),
    body,
    signature: fc.oneof(
      fc.constant(undefined),
      hex.map((h) => `sha256=${h}`),
      fc.string({ unit: "grapheme-ascii", maxLength: 80 }),
      hex.map((h) => `sha1=${h.slice(0, 40)}`),
    ),
  }),
  // A true signature over bytes of which only a part arrives, or a part of a true signature.
  fc
    .record({ body: webhook, cut: fc.nat(), cutSignature: fc.boolean() })
    .map(({ body, cut, cutSignature }) => {
      const signature = signWebhook(body, SECRET);
      return cutSignature
        ? { kind: "truncated" as const, body, signature: signature.slice(0, cut % signature.length) }
        : { kind: "truncated" as const, body: body.slice(0, cut % body.length), signature };
    }),
  fc
    .record({ body, key: fc.string({ minLength: 1, maxLength: 40 }).filter((k) => k !== SECRET) })
    .map(({ body, key }) => ({ kind: "other key" as const, body, signature: signWebhook(body, key) })),
  fc.record({ kind: fc.constant("replayed" as const), index: fc.nat() }),
  // Truly signed, but over the size limit: refused before anything is read.
  fc.record({ body: webhook, pad: fc.integer({ min: 1, max: 4096 }) }).map(({ body, pad }) => {
    const big = body.replace(
      '"messaging_product"',
      `"pad":"${"x".repeat(BODY_LIMIT + pad)}","messaging_product"`,
    );
    return { kind: "oversized" as const, body: big, signature: signWebhook(big, SECRET) };
  }),
  // Deep bodies, signed (from Meta, then: dead-lettered whole) and not (refused).
  fc.record({ body: deepBody, signed: fc.boolean() }).map(({ body, signed }) => ({
    kind: "deep" as const,
    body,
    signed,
    signature: signed
      ? signWebhook(body, SECRET)
      : `sha256=${createHmac("sha256", "x").update(body).digest("hex")}`,
  })),
);

test(`${RUNS} forged, truncated, other-key, replayed, oversized and deep webhooks: none stored, none a 5xx`, async () => {
  const { app, stored } = setup();
  // Genuine webhooks, stored once, for the replays to repeat.
  const genuine = fc.sample(webhook, 50);
  for (const body of genuine) {
    const response = await app.inject({
      method: "POST",
      url: "/webhook",
      headers: { "content-type": "application/json", "x-hub-signature-256": signWebhook(body, SECRET) },
      payload: body,
    });
    assert.equal(response.statusCode, 200, response.body);
  }
  const storedBefore = stored().length;
  assert.ok(storedBefore > 0);
  const seen = new Map<string, number>();

  await fc.assert(
    fc.asyncProperty(attack, async (a) => {
      const [payload, signature] =
        a.kind === "replayed"
          ? [
              genuine[a.index % genuine.length] ?? "",
              signWebhook(genuine[a.index % genuine.length] ?? "", SECRET),
            ]
          : [a.body, a.signature];
      const response = await app.inject({
        method: "POST",
        url: "/webhook",
        headers: {
          "content-type": "application/json",
          ...(signature !== undefined ? { "x-hub-signature-256": signature } : {}),
        },
        payload,
      });
      seen.set(a.kind, (seen.get(a.kind) ?? 0) + 1);
      assert.ok(response.statusCode < 500, `${a.kind}: ${response.statusCode} ${response.body}`);
      assert.equal(stored().length, storedBefore, `${a.kind} was stored`);
      const expected = {
        forged: [401],
        truncated: [400, 401],
        "other key": [401],
        replayed: [200],
        oversized: [413],
        deep: a.kind === "deep" && a.signed ? [200] : [401],
      }[a.kind];
      assert.ok(expected.includes(response.statusCode), `${a.kind}: ${response.statusCode}`);
    }),
    { numRuns: RUNS },
  );
  // Every kind was thrown in earnest, not left to chance.
  for (const kind of ["forged", "truncated", "other key", "replayed", "oversized", "deep"])
    assert.ok((seen.get(kind) ?? 0) > RUNS / 20, `${kind}: ${seen.get(kind) ?? 0} runs`);
});

test("operator-shaped values in every shopper field are stored as plain strings or not at all", async () => {
  const operator = fc.constantFrom<unknown>(
    { $gt: "" },
    { $where: "sleep(1000)" },
    { $ne: null },
    ["$in"],
    "$where",
    '{"$gt": ""}',
  );
  // Every field a shopper's message gives us, by its path in the message object.
  const fields = [
    ["from"],
    ["from_user_id"],
    ["id"],
    ["text", "body"],
    ["context", "id"],
    ["interactive", "button_reply", "id"],
    ["interactive", "button_reply", "title"],
    ["interactive", "list_reply", "id"],
    ["button", "payload"],
    ["image", "id"],
    ["image", "caption"],
    ["reaction", "message_id"],
  ];
  const shapes: Record<string, Record<string, unknown>> = {
    text: { type: "text", text: { body: "hi" } },
    "interactive.button_reply": {
      type: "interactive",
      interactive: { type: "button_reply", button_reply: { id: "b", title: "B" } },
    },
    "interactive.list_reply": {
      type: "interactive",
      interactive: { type: "list_reply", list_reply: { id: "l", title: "L" } },
    },
    button: { type: "button", button: { payload: "p", text: "P" } },
    image: { type: "image", image: { id: "M1" } },
    reaction: { type: "reaction", reaction: { message_id: "wamid.r" } },
    context: { type: "text", text: { body: "hi" }, context: { id: "wamid.c" } },
  };
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...fields), operator, fc.boolean(), async (path, value, inProfile) => {
      const shape = shapes[path.slice(0, 2).join(".")] ?? shapes[path[0] ?? ""] ?? shapes.text ?? {};
      const json = messageWebhook(structuredClone(shape), {
        wamid: `wamid.op${n++}`,
        waId: "15550001111",
        timestamp: 1_700_000_000,
      }) as {
        entry: { changes: { value: { messages: Record<string, unknown>[]; contacts: unknown[] } }[] }[];
      };
      const change = json.entry[0]?.changes[0]?.value;
      assert.ok(change);
      if (inProfile) change.contacts = [{ profile: { name: value }, wa_id: value }];
      let target: Record<string, unknown> = change.messages[0] ?? {};
      for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
      target[path.at(-1) ?? ""] = value;
      const body = JSON.stringify(json);
      // An app of its own: the same operator-shaped wamid twice would be a retry, dropped as one.
      const { app, stored } = setup();
      const response = await app.inject({
        method: "POST",
        url: "/webhook",
        headers: { "content-type": "application/json", "x-hub-signature-256": signWebhook(body, SECRET) },
        payload: body,
      });
      assert.equal(response.statusCode, 200);
      const events = stored().map((m) => inbound.InboundEvent.decode(m.value as Uint8Array));
      const where = `${inProfile ? "contacts and " : ""}${path.join(".")}`;
      // An operator object where Meta writes a string: the message is dead-lettered, not stored.
      if (typeof value !== "string")
        assert.equal(events.length, 0, `${where}: ${JSON.stringify(value)} stored`);
      // An operator-shaped string is the shopper's text: stored, as that text.
      else {
        assert.equal(events.length, 1, where);
        assert.ok(stringsIn(events[0]).includes(value), `${where}: ${value} not stored as text`);
      }
    }),
    { numRuns: 2000 },
  );
});

/** Every string in a decoded event, wherever it sits. */
function stringsIn(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (value === null || typeof value !== "object") return [];
  return Object.values(value).flatMap(stringsIn);
}

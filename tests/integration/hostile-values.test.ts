import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { createConversationHandler } from "@taituri/conversation-service/handler";
import {
  CONVERSATIONS,
  type ConversationDoc,
  ConversationStore,
  conversationIndexes,
  findShopper,
  IDENTITIES,
  identityKey,
} from "@taituri/conversation-service/store";
import { catalog, countries, messages } from "@taituri/conversation-service/testing/fixtures";
import { type Infra, startInfra } from "@taituri/devenv";
import { buildIngressApp } from "@taituri/ingress-service/app";
import { type OutgoingMessage, type Publisher, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { ensureIndexes } from "@taituri/mongo";
import { Registry } from "@taituri/ops";
import { messageWebhook, signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { type Db, MongoClient } from "mongodb";

/**
 * Operator-shaped values in every field a shopper controls (their number and BSUID, their profile
 * name, their text, a button's id), from a signed webhook through ingress and the conversation's
 * handler to its store on the real MongoDB-wire server: stored and queried as the plain strings
 * they are. A query that took one for an operator would find, or change, other shoppers'
 * conversations; the innocent shopper beside them is the witness. An operator where Meta writes a
 * string never leaves ingress.
 */
let infra: Infra;
let mongo: MongoClient;
let db: Db;
let store: ConversationStore;

const SECRET = "hostile-secret";
const PN = `PNHOSTILE${randomUUID().slice(0, 6)}`;
const topics = topicNames("hostile.");
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const published: { topic: string; messages: OutgoingMessage[] }[] = [];
const publisher: Publisher = { send: async (topic, messages) => void published.push({ topic, messages }) };

before(async () => {
  infra = await startInfra();
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(`hostile_${randomUUID().slice(0, 8)}`);
  await ensureIndexes(db, conversationIndexes);
  store = new ConversationStore(db);
});

after(async () => {
  await db?.dropDatabase().catch(() => {});
  await mongo?.close();
  await infra?.stop();
});

/** The webhook posted to ingress, signed; its inbound records handed to the conversation's handler. */
async function deliver(body: Record<string, unknown>): Promise<number> {
  const ingress = buildIngressApp({
    appSecrets: [SECRET],
    verifyToken: "v",
    bodyLimitBytes: 64 * 1024,
    topics,
    publisher,
    logger,
    registry: new Registry(),
    publishTimeoutMs: 5000,
    recentIdsCapacity: 0,
  });
  const handler = createConversationHandler({
    store,
    publisher,
    topics,
    catalog,
    messages,
    countries,
    sessionTtlMs: 3600_000,
    generationDeadlineMs: 90_000,
    logger,
    registry: new Registry(),
  });
  const before = published.length;
  const raw = JSON.stringify(body);
  const response = await ingress.inject({
    method: "POST",
    url: "/webhook",
    headers: { "content-type": "application/json", "x-hub-signature-256": signWebhook(raw, SECRET) },
    payload: raw,
  });
  assert.equal(response.statusCode, 200, response.body);
  const records = published.slice(before).filter((p) => p.topic === topics.inbound);
  let handled = 0;
  for (const record of records.flatMap((p) => p.messages)) {
    await handler.handle({
      topic: topics.inbound,
      partition: 0,
      offset: String(handled),
      key: record.key ?? "",
      value: record.value as Buffer,
      headers: record.headers ?? {},
    });
    handled++;
  }
  return handled;
}

const conversations = () => db.collection<ConversationDoc>(CONVERSATIONS);
const repliesTo = (conversationId: string) =>
  published
    .filter((p) => p.topic === topics.outbound)
    .flatMap((p) => p.messages.filter((m) => m.key === conversationId));

const innocent = { waId: "447700900001", conversationId: `${PN}:447700900001` };
const hostile = [
  { waId: "$where", userId: '{"$gt": ""}', name: "$where", text: '{"$gt": ""}' },
  { waId: '{"$ne": null}', userId: "$gt", name: '{"$gt": ""}', text: "$where" },
  { waId: "$regex", userId: ".*", name: "$ne", text: '{"$where": "sleep(1000)"}' },
];

test("operator-shaped numbers, BSUIDs, names and texts are stored and queried as plain strings", async () => {
  assert.equal(
    await deliver(textWebhook("hi", { phoneNumberId: PN, waId: innocent.waId, wamid: `wamid.i${PN}` })),
    1,
  );
  for (const [i, h] of hostile.entries()) {
    const body = textWebhook(h.text, {
      phoneNumberId: PN,
      waId: h.waId,
      userId: h.userId,
      profileName: h.name,
      wamid: `wamid.h${i}${PN}`,
    });
    assert.equal(await deliver(body), 1);
  }

  const stored = await conversations().find({ phoneNumberId: PN }).toArray();
  assert.deepEqual(
    stored.map((c) => c._id).sort(),
    [innocent.conversationId, ...hostile.map((h) => `${PN}:${h.userId}`)].sort(),
  );
  for (const h of hostile) {
    const id = `${PN}:${h.userId}`;
    const doc = await store.load(id);
    assert.equal(doc?._id, id);
    assert.equal(doc?.shopperId, h.userId);
    assert.deepEqual(doc?.contact, { waId: h.waId, userId: h.userId });
    assert.ok(repliesTo(id).length > 0, `${h.userId} got no reply`);
    // The claims on the shopper's ids are theirs alone.
    const claims = await db.collection(IDENTITIES).find({ conversationId: id }).toArray();
    assert.deepEqual(
      claims.map((c) => String(c._id)).sort(),
      [identityKey(PN, "u", h.userId), identityKey(PN, "wa", h.waId)].sort(),
    );
    // Found by either id as written, and only theirs: `{"$gt": ""}` or `.*` read as an operator or
    // a pattern would bring every shopper's conversation.
    for (const shopperId of [h.waId, h.userId])
      assert.deepEqual((await findShopper(db, shopperId, PN)).conversationIds, [id], shopperId);
  }
  // The innocent shopper's conversation is as their one message left it.
  const witness = await store.load(innocent.conversationId);
  assert.equal(witness?.version, 1);
  assert.deepEqual(witness?.contact, { waId: innocent.waId });
});

test("an operator-shaped button id is the shopper's tap, as text; an operator object never leaves ingress", async () => {
  const tapped = messageWebhook(
    {
      type: "interactive",
      interactive: { type: "button_reply", button_reply: { id: "$where", title: "$gt" } },
    },
    { phoneNumberId: PN, waId: innocent.waId, wamid: `wamid.tap${PN}` },
  );
  assert.equal(await deliver(tapped), 1);
  const witness = await store.load(innocent.conversationId);
  assert.equal(witness?.version, 2);

  const objects = [{ $gt: "" }, { $where: "sleep(1000)" }, { $ne: null }];
  for (const [i, operator] of objects.entries()) {
    for (const field of ["from", "text", "id"] as const) {
      const body = textWebhook("hi", {
        phoneNumberId: PN,
        waId: innocent.waId,
        wamid: `wamid.o${i}${field}${PN}`,
      });
      const change = body.entry[0]?.changes[0]?.value as { messages: Record<string, unknown>[] } | undefined;
      const message = change?.messages[0];
      assert.ok(message);
      if (field === "text") message.text = { body: operator };
      else message[field] = operator;
      assert.equal(await deliver(body), 0, `${field}: ${JSON.stringify(operator)}`);
    }
  }
  assert.equal((await store.load(innocent.conversationId))?.version, 2);
  assert.equal(await conversations().countDocuments({ phoneNumberId: PN }), 1 + hostile.length);
});

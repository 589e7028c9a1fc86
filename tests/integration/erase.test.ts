import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomInt, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { createLogger } from "@taituri/logging";
import { type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";
import { Redis } from "ioredis";
import { Binary, type Db, MongoClient } from "mongodb";
import { Shopper } from "./support/shopper.ts";
import { type Stack, startStack } from "./support/stack.ts";

/**
 * `npm run erase` on real servers: three shoppers go through the real services (generation, the
 * limiter and payment included): A stops at the designs, B pays (and has a phone number and a
 * BSUID), C stops at the designs and is not erased. A and B are erased, B by either id; then every
 * document of every collection of the test's database (GridFS files and chunks included, binary
 * fields read as bytes) and every Redis key of the test's limiter prefix (its name and value) is
 * searched for A's and B's phone numbers, BSUIDs, names and address: nothing is left but B's order
 * tombstone, which holds none of them; C's data is all there; a second erase removes nothing.
 */
const SECRET = "erase-secret";
const run = randomUUID().slice(0, 8);
const PNID = "PNERASE";
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const phone = () => `4478${String(randomInt(1e8, 1e9))}`;
const bsuid = () => `GB.${String(randomInt(1e9, 1e10))}${String(randomInt(1e9, 1e10))}`;

const A = {
  waId: phone(),
  profile: `Ottoline A${run}`,
  recipient: "Peregrinus",
  first: `Obsidian teapot ${run}`,
};
const B = {
  waId: phone(),
  userId: bsuid(),
  profile: `Wilhelmina B${run}`,
  recipient: "Bartholomew",
  first: `Velvet walrus ${run}`,
  address: {
    country: "ES",
    name: "Hortensia Quimby",
    street: "Calle Zurbarán 77",
    city: "Villaquejida",
    postcode: "24762",
  },
};
const C = {
  waId: phone(),
  userId: bsuid(),
  profile: `Cornelius C${run}`,
  recipient: "Gwendolyn",
  first: `Amber kite ${run}`,
};

/** What must not be left of A and B anywhere. */
const erased = [
  A.waId,
  A.profile,
  A.recipient,
  A.first,
  B.waId,
  B.userId,
  B.userId.slice(3),
  B.profile,
  B.recipient,
  B.first,
  B.address.name,
  B.address.street,
  B.address.city,
  B.address.postcode,
];
/** What must still be there of C. */
const kept = [C.waId, C.userId, C.recipient];

let infra: Infra;
let graph: FakeGraphApi;
let stack: Stack;
let mongo: MongoClient;
let db: Db;
let redis: Redis;

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  stack = await startStack({
    id: `erase-${run}`,
    infra,
    graph,
    logger,
    secret: SECRET,
    generation: true,
    payment: true,
    conversation: { TIMER_POLL_MS: "200" },
  });
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(stack.dbName);
  redis = new Redis(infra.redis.url, { maxRetriesPerRequest: 1 });
});

after(async () => {
  redis?.disconnect();
  await stack?.stop();
  await mongo?.close();
  await graph?.close();
  await infra?.stop();
});

const shopper = (ids: { waId: string; userId?: string }, profileName: string) =>
  new Shopper({
    ...ids,
    phoneNumberId: PNID,
    webhook: () => stack.ingress.endpoints.webhook ?? "",
    secret: SECRET,
    graph,
    wamidPrefix: run,
    timeoutMs: 45_000,
    profileName,
  });

/** From the first message to the three designs and the list to choose from (returns the list). */
async function toDesigns(s: Shopper, first: string, recipient: string) {
  await s.say(first);
  await s.next();
  await s.say(recipient);
  const [themes] = await s.next();
  await s.tap(themes?.ids.find((id) => id.endsWith(":birthday")) ?? "");
  const [styles] = await s.next();
  await s.tap(styles?.ids.find((id) => id.endsWith(":retro")) ?? "");
  const [confirm] = await s.next();
  await s.tap(confirm?.ids[0] ?? "");
  assert.match((await s.next())[0]?.text ?? "", /Creating your designs/);
  const shown = await s.next(4);
  return shown[3];
}

/** `npm run erase -- …args --json` against the stack; its report. */
function erase(...args: string[]) {
  const cli = spawnSync(process.execPath, ["scripts/erase.ts", ...args, "--json"], {
    cwd: new URL("../..", import.meta.url),
    env: { ...process.env, ...stack.env, LIMITER_KEY_PREFIX: `erase-${run}` },
    encoding: "utf8",
  });
  assert.equal(cli.status, 0, `${cli.stdout}\n${cli.stderr}`);
  return JSON.parse(cli.stdout) as {
    total: number;
    conversations: number;
    shopperIds: number;
    removed: Record<string, number>;
    keptOrders: { number: string; state: string }[];
  };
}

/** Any value as text: a binary field as its bytes, so a string inside an encoded record is found too. */
function asText(value: unknown): string {
  if (value instanceof Binary) return Buffer.from(value.buffer).toString("latin1");
  if (Buffer.isBuffer(value)) return value.toString("latin1");
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(asText).join("\u0000");
  if (value && typeof value === "object")
    return Object.entries(value)
      .map(([k, v]) => `${k}=${asText(v)}`)
      .join("\u0000");
  return String(value);
}

/** Every document of every collection of the database, as text, by collection. */
async function everyDocument(): Promise<Map<string, string[]>> {
  const all = new Map<string, string[]>();
  for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray())
    all.set(name, (await db.collection(name).find({}).toArray()).map(asText));
  return all;
}

/** Every Redis key of the test's limiter prefix, with its value, as text. */
async function everyKey(): Promise<string[]> {
  const found: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `{erase-${run}}:*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      const value =
        type === "hash" ? asText(await redis.hgetall(key)) : type === "string" ? await redis.get(key) : type;
      found.push(`${key} ${value}`);
    }
  } while (cursor !== "0");
  return found;
}

const leaks = (texts: string[], secrets: string[]) => secrets.filter((s) => texts.some((t) => t.includes(s)));

describe("npm run erase", { timeout: 6 * 60_000 }, () => {
  test("removes two shoppers' data everywhere, keeps the paid order's tombstone and a third shopper", async (t) => {
    const a = shopper({ waId: A.waId }, A.profile);
    const b = shopper({ waId: B.waId, userId: B.userId }, B.profile);
    const c = shopper({ waId: C.waId, userId: C.userId }, C.profile);
    await Promise.all([
      toDesigns(a, A.first, A.recipient),
      toDesigns(c, C.first, C.recipient),
      (async () => {
        const list = await toDesigns(b, B.first, B.recipient);
        await b.tap(list?.ids[0] ?? "");
        await b.giveAddress(B.address);
        assert.match((await b.next())[0]?.text ?? "", /Preparing your checkout/);
        const [pay] = await b.next();
        assert.equal(pay?.type, "cta_url");
        assert.equal((await fetch(`${pay?.url}/pay`, { method: "POST" })).status, 200);
        await b.next();
      })(),
    ]);
    await Promise.all([a.quiet(), b.quiet(), c.quiet()]);
    const [order] = await db
      .collection("payment_orders")
      .find({ conversationId: b.conversationId })
      .toArray();
    assert.equal(order?.state, "paid");
    const number = String(order?.number);

    // Before: every secret is somewhere (so the search below can find them), and Redis holds keys.
    const stored = await everyDocument();
    const beforeTexts = [...stored.values()].flat();
    const written = [
      A.waId,
      A.recipient,
      B.waId,
      B.userId,
      B.recipient,
      B.address.street,
      B.address.postcode,
    ];
    assert.deepEqual(
      written.filter((s) => !beforeTexts.some((t) => t.includes(s))),
      [],
      "the journeys stored what the erase must remove",
    );
    const keysBefore = await everyKey();
    assert.ok(
      keysBefore.some((k) => k.includes(A.waId)),
      "A's limiter bucket exists",
    );
    assert.ok(
      (stored.get("images.files") ?? []).some((f) => f.includes(a.conversationId)),
      "A's designs exist",
    );

    // A dry run counts and changes nothing.
    const dry = erase(A.waId, "--dry-run");
    assert.ok(dry.total > 0, JSON.stringify(dry));
    assert.equal(dry.conversations, 1);
    assert.ok((dry.removed["images (GridFS)"] ?? 0) >= 3, JSON.stringify(dry.removed));
    assert.deepEqual(await everyDocument(), stored, "the dry run changed no document");
    assert.deepEqual((await everyKey()).sort(), keysBefore.sort(), "the dry run changed no Redis key");

    // A by phone number under the business number; B by the BSUID alone: the phone number goes too.
    const erasedA = erase(A.waId, "--phone-number-id", PNID);
    assert.equal(erasedA.total, dry.total, JSON.stringify({ dry, erasedA }));
    const erasedB = erase(B.userId);
    assert.equal(erasedB.conversations, 1);
    assert.equal(erasedB.shopperIds, 2, "B's phone number was found through the BSUID");
    assert.deepEqual(erasedB.keptOrders, [{ number, state: "paid" }]);
    t.diagnostic(`A: ${JSON.stringify(erasedA.removed)}`);
    t.diagnostic(`B: ${JSON.stringify(erasedB.removed)}`);
    assert.ok((erasedB.removed.payment_sessions ?? 0) >= 1, JSON.stringify(erasedB.removed));

    // Nothing of A and B is left anywhere, except B's order tombstone, which names neither.
    const remaining = await everyDocument();
    const afterTexts = [...remaining.values()].flat();
    const keysAfter = await everyKey();
    for (const [collection, docs] of remaining)
      assert.deepEqual(leaks(docs, erased), [], `nothing of A or B left in ${collection}`);
    assert.deepEqual(leaks(keysAfter, erased), [], "nothing of A or B left in Redis");
    assert.ok(!afterTexts.some((t) => t.includes(a.conversationId) || t.includes(b.conversationId)));
    const [stone] = await db.collection("payment_orders").find({ number }).toArray();
    assert.equal(stone?._id, `erased:${number}`);
    assert.equal(stone?.state, "paid");
    assert.equal(stone?.amount, order?.amount);
    assert.equal(stone?.currency, order?.currency);
    assert.deepEqual(stone?.paidAt, order?.paidAt);
    assert.deepEqual(stone?.createdAt, order?.createdAt);
    assert.equal(stone?.conversationId, "erased");
    assert.equal(stone?.delivery, undefined);
    assert.equal(stone?.recipient, undefined);

    // C is all there: the conversation, its rounds and designs, its limiter bucket, every id.
    for (const secret of kept)
      assert.ok(
        afterTexts.some((t) => t.includes(secret)),
        `C's ${secret} is still stored`,
      );
    for (const collection of ["conversation_conversations", "conversation_identities", "generation_rounds"])
      assert.deepEqual(
        remaining.get(collection)?.filter((t) => t.includes(c.conversationId)),
        stored.get(collection)?.filter((t) => t.includes(c.conversationId)),
        `C's ${collection} unchanged`,
      );
    assert.equal(
      remaining.get("images.files")?.filter((t) => t.includes(c.conversationId)).length,
      stored.get("images.files")?.filter((t) => t.includes(c.conversationId)).length,
    );
    assert.ok(
      keysAfter.some((k) => k.includes(C.userId)),
      "C's limiter bucket is still there",
    );

    // A second erase, by any id, removes nothing and says so.
    for (const id of [A.waId, B.waId, B.userId]) {
      const again = erase(id);
      assert.equal(again.total, 0, JSON.stringify(again));
      assert.deepEqual(again.keptOrders, []);
    }
    const text = spawnSync(process.execPath, ["scripts/erase.ts", B.waId], {
      cwd: new URL("../..", import.meta.url),
      env: { ...process.env, ...stack.env, LIMITER_KEY_PREFIX: `erase-${run}` },
      encoding: "utf8",
    });
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^Nothing to erase/);
    assert.deepEqual(await everyDocument(), remaining, "the second erase changed nothing");
  });
});

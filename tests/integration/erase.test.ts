import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { createLogger } from "@taituri/logging";
import { type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import { Redis } from "ioredis";
import { type Db, MongoClient } from "mongodb";
import { Shopper } from "./support/shopper.ts";
import { type Stack, startStack } from "./support/stack.ts";
import { asText, everyDocument } from "./support/stored.ts";

/**
 * `npm run erase` on real servers: three shoppers go through the real services (generation, the
 * limiter and payment included): A stops at the designs, B pays (and has a phone number and a
 * BSUID), C stops at the designs and is not erased. A and B are erased, B by either id; then every
 * document of every collection of the test's database (GridFS files and chunks included, binary
 * fields read as bytes) and every Redis key of the test's limiter prefix (its name and value) is
 * searched for A's and B's phone numbers, BSUIDs, names and address: nothing is left but B's order
 * tombstone, which holds none of them; C's data is all there; a second erase removes nothing.
 * Then the conversation service's memory: D is erased mid-journey and writes again at once, to the
 * conversation service that kept their journey in memory: it starts anew, and nothing of the erased
 * journey is written back; E, mid-journey beside D, carries on. A replica that does not confirm
 * it forgot is named in a warning.
 */
const SECRET = "erase-secret";
const run = runId();
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

const D = {
  waId: phone(),
  profile: `Desdemona D${run}`,
  recipient: "Evangeline",
  first: `Copper owl ${run}`,
};
const E = { waId: phone(), profile: `Ebenezer E${run}`, recipient: "Maximilian", first: `Jade comet ${run}` };

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

/**
 * The collection in which each conversation replica acknowledges the erases, refreshed every few
 * seconds: no personal data (searched like the rest), but never the same twice.
 */
const CACHE_EPOCHS = "conversation_cache_epochs";
const withoutAcks = (all: Map<string, string[]>) =>
  new Map([...all].filter(([name]) => name !== CACHE_EPOCHS));

/**
 * `npm run erase -- …args` against the stack. Not spawnSync: the erase waits for the conversation
 * service, which runs in this process and must go on meanwhile.
 */
function eraseCli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["scripts/erase.ts", ...args], {
    cwd: new URL("../..", import.meta.url),
    env: { ...process.env, ...stack.env, LIMITER_KEY_PREFIX: `erase-${run}` },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** `npm run erase -- …args --json` against the stack; its report. */
async function erase(...args: string[]) {
  const cli = await eraseCli(...args, "--json");
  assert.equal(cli.status, 0, `${cli.stdout}\n${cli.stderr}`);
  return JSON.parse(cli.stdout) as {
    total: number;
    conversations: number;
    shopperIds: number;
    removed: Record<string, number>;
    keptOrders: { number: string; state: string }[];
    replicas?: { confirmed: string[]; unconfirmed: string[] };
  };
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
    const stored = await everyDocument(db);
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
    const dry = await erase(A.waId, "--dry-run");
    assert.ok(dry.total > 0, JSON.stringify(dry));
    assert.equal(dry.conversations, 1);
    assert.ok((dry.removed["images (GridFS)"] ?? 0) >= 3, JSON.stringify(dry.removed));
    assert.deepEqual(
      withoutAcks(await everyDocument(db)),
      withoutAcks(stored),
      "the dry run changed no document",
    );
    assert.equal(dry.replicas, undefined, "a dry run asks no replica to forget");
    assert.deepEqual((await everyKey()).sort(), keysBefore.sort(), "the dry run changed no Redis key");

    // A by phone number under the business number; B by the BSUID alone: the phone number goes too.
    const erasedA = await erase(A.waId, "--phone-number-id", PNID);
    assert.equal(erasedA.total, dry.total, JSON.stringify({ dry, erasedA }));
    assert.equal(erasedA.replicas?.confirmed.length, 1, "the conversation service dropped its cache");
    assert.deepEqual(erasedA.replicas?.unconfirmed, []);
    const erasedB = await erase(B.userId);
    assert.equal(erasedB.conversations, 1);
    assert.equal(erasedB.shopperIds, 2, "B's phone number was found through the BSUID");
    assert.deepEqual(erasedB.keptOrders, [{ number, state: "paid" }]);
    t.diagnostic(`A: ${JSON.stringify(erasedA.removed)}`);
    t.diagnostic(`B: ${JSON.stringify(erasedB.removed)}`);
    assert.ok((erasedB.removed.payment_sessions ?? 0) >= 1, JSON.stringify(erasedB.removed));

    // Nothing of A and B is left anywhere, except B's order tombstone, which names neither.
    const remaining = await everyDocument(db);
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
      const again = await erase(id);
      assert.equal(again.total, 0, JSON.stringify(again));
      assert.deepEqual(again.keptOrders, []);
    }
    const text = await eraseCli(B.waId);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^Nothing to erase/);
    assert.deepEqual(
      withoutAcks(await everyDocument(db)),
      withoutAcks(remaining),
      "the second erase changed nothing",
    );
  });

  test("a shopper erased mid-journey who writes again at once starts anew: the replica that kept their journey in memory writes none of it back", async () => {
    const conversation = stack.services.find((s) =>
      s.registry.getSingleMetric("conversation_cache_forgets_total"),
    );
    assert.ok(conversation, "the stack runs a conversation service");
    const forgets = async () =>
      (await conversation.registry.getSingleMetric("conversation_cache_forgets_total")?.get())?.values[0]
        ?.value ?? 0;
    const d = shopper({ waId: D.waId }, D.profile);
    const e = shopper({ waId: E.waId }, E.profile);
    // Both named their recipient and have the list of themes: their state is in the service's memory.
    const toThemes = async (s: Shopper, who: typeof D) => {
      await s.say(who.first);
      await s.next();
      await s.say(who.recipient);
      const [themes] = await s.next();
      assert.match(themes?.text ?? "", new RegExp(who.recipient));
      return themes;
    };
    const [dThemes, eThemes] = await Promise.all([toThemes(d, D), toThemes(e, E)]);
    await Promise.all([d.quiet(), e.quiet()]);
    const conversations = ["conversation_conversations", "conversation_versions", "conversation_identities"];
    const everywhere = async (secret: string) =>
      [...(await everyDocument(db))]
        .filter(([, docs]) => docs.some((t) => t.includes(secret)))
        .map(([name]) => name);
    assert.deepEqual(
      (await everywhere(D.recipient)).filter((c) => conversations.includes(c)).sort(),
      ["conversation_versions"],
      "D's recipient is stored (in the version that named them)",
    );
    const forgotBefore = await forgets();

    const erased = await erase(D.waId);
    assert.equal(erased.conversations, 1);
    assert.ok((erased.removed.conversation_versions ?? 0) >= 1, JSON.stringify(erased.removed));
    assert.deepEqual(erased.replicas?.unconfirmed, [], JSON.stringify(erased.replicas));
    assert.equal(erased.replicas?.confirmed.length, 1, JSON.stringify(erased.replicas));
    assert.ok((await forgets()) > forgotBefore, "the replica counted dropping its cache");
    assert.deepEqual(await everywhere(D.recipient), [], "D's recipient is gone");

    // D answers the old journey's question as if nothing happened: a theme from the old list.
    await d.tap(dThemes?.ids.find((id) => id.endsWith(":birthday")) ?? "");
    const [reply] = await d.next();
    assert.equal(
      reply?.text,
      `Hi ${D.profile}! 🎁 I design one-of-a-kind gifts. Who is this gift for? Send me their name.`,
      "a new conversation greets D; the erased one would have asked for a style",
    );
    await d.quiet();
    assert.deepEqual(await everywhere(D.recipient), [], "nothing of the erased journey was written back");
    const [head] = await db
      .collection("conversation_conversations")
      .find({ _id: d.conversationId as never })
      .toArray();
    assert.equal(head?.version, 1);
    assert.equal(head?.conversation?.state, "awaiting_recipient");
    assert.equal(head?.conversation?.recipient, undefined);
    assert.equal(
      await db.collection("conversation_versions").countDocuments({ conversationId: d.conversationId }),
      0,
    );

    // E, whose journey the replica forgot too, carries on from the stored one.
    await e.tap(eThemes?.ids.find((id) => id.endsWith(":birthday")) ?? "");
    const [styles] = await e.next();
    assert.match(styles?.text ?? "", /Now pick a style/);
    assert.ok((await everywhere(E.recipient)).includes("conversation_versions"), "E's journey is all there");

    // The new conversation is D's too: the next erase removes it and says the replica forgot it
    // (as text this time); the one after finds nothing.
    const anew = await eraseCli(D.waId);
    assert.equal(anew.status, 0, anew.stderr);
    assert.match(
      anew.stdout,
      /^Conversation replicas: 1 confirmed they dropped the conversations they kept in memory \(.+:\d+:\w+\)\.$/m,
    );
    assert.doesNotMatch(anew.stdout, /Warning/);
    const again = await erase(D.waId);
    assert.equal(again.total, 0, JSON.stringify(again));
    assert.deepEqual(again.replicas?.unconfirmed, []);
    const dry = await eraseCli(E.waId, "--dry-run");
    assert.equal(dry.status, 0, dry.stderr);
    assert.doesNotMatch(dry.stdout, /replicas/, "a dry run asks no replica");
  });

  test("a replica that does not confirm is named in a warning, and the erase still succeeds", async () => {
    // What a replica that died a moment ago (or is stuck) leaves: a recent ack of an older token.
    const stuck = `it-stuck:${run}`;
    const acks = db.collection<{ _id: string; token: string | null }>(CACHE_EPOCHS);
    await acks.updateOne(
      { _id: `seen:${stuck}` },
      { $set: { token: null }, $currentDate: { at: true } },
      { upsert: true },
    );
    try {
      // Each waits the whole 20 s for the stuck one: the two at once.
      const [out, json] = await Promise.all([eraseCli(phone()), eraseCli(phone(), "--json")]);
      assert.equal(out.status, 0, out.stderr);
      assert.match(out.stdout, /^Nothing to erase/);
      assert.match(
        out.stdout,
        new RegExp(
          `^Warning: 1 conversation replica\\(s\\) did not confirm within 20 s .*: ${stuck}\\. Restart them`,
          "m",
        ),
      );
      assert.equal(json.status, 0, json.stderr);
      const report = JSON.parse(json.stdout) as { replicas: { confirmed: string[]; unconfirmed: string[] } };
      assert.deepEqual(report.replicas.unconfirmed, [stuck]);
      assert.equal(report.replicas.confirmed.length, 1, "the running conversation service did confirm");
      assert.match(json.stderr, /^Warning: 1 conversation replica/m);
    } finally {
      await acks.deleteOne({ _id: `seen:${stuck}` });
    }
  });
});

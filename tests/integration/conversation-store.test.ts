import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import {
  CONVERSATIONS,
  type ConversationDoc,
  ConversationStore,
  conversationIndexes,
  IDENTITIES,
  VERSIONS,
} from "@taituri/conversation-service/store";
import { type Infra, startInfra } from "@taituri/devenv";
import { ensureIndexes } from "@taituri/mongo";
import { type Db, MongoClient } from "mongodb";

/**
 * The conversation store on the real MongoDB-wire server: the version check (concurrent writers of
 * one conversation, a writer that died between claiming a version and writing it) and the claim of
 * each event (a conversation's insert for its first, a version claim for the others).
 */
let infra: Infra;
let mongo: MongoClient;
let db: Db;
let store: ConversationStore;

before(async () => {
  infra = await startInfra();
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(`convstore_${randomUUID().slice(0, 8)}`);
  await ensureIndexes(db, conversationIndexes);
  store = new ConversationStore(db);
});

after(async () => {
  await mongo?.close();
  await infra?.stop();
});

const at = new Date("2026-11-30T10:00:00Z");
function next(id: string, state: string) {
  return {
    conversationId: id,
    phoneNumberId: "PNJ",
    shopperId: "s1",
    contact: { waId: "s1" },
    conversation: { state } as unknown as ConversationDoc["conversation"],
    timers: [],
  };
}

async function created(id: string): Promise<ConversationDoc> {
  assert.equal(await store.commit(null, next(id, "greeted"), `${id}-e0`, [], at), 1);
  const doc = await store.load(id);
  assert.ok(doc);
  return doc;
}

/** What a writer leaves when it dies right after claiming `version` for `eventId`: the claim alone. */
function deadWritersClaim(id: string, version: number, eventId: string, write: Record<string, unknown>) {
  return db.collection(VERSIONS).insertOne({
    _id: `${id}#${version}` as never,
    conversationId: id,
    eventId,
    write: { ...write, version },
    at,
  });
}

test("of ten writers holding the same version, exactly one writes the next", async () => {
  const id = `c-${randomUUID()}`;
  const v1 = await created(id);
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => store.commit(v1, next(id, `state-${i}`), `${id}-e${i + 1}`, [], at)),
  );
  const winners = results.flatMap((r, i) => (r === "conflict" ? [] : [i]));
  assert.equal(winners.length, 1, `winners: ${JSON.stringify(results)}`);
  assert.equal(results[winners[0] ?? -1], 2);
  const doc = await store.load(id);
  assert.equal(doc?.version, 2);
  assert.equal((doc?.conversation as unknown as { state: string } | undefined)?.state, `state-${winners[0]}`);
  assert.deepEqual(doc?.appliedEventIds, [`${id}-e0`, `${id}-e${(winners[0] ?? 0) + 1}`]);
});

test("a version claimed by a writer that died before writing it is finished by the next writer", async () => {
  const id = `c-${randomUUID()}`;
  const v1 = await created(id);
  // What a writer leaves when it dies right after claiming version 2.
  await deadWritersClaim(id, 2, `${id}-dead`, {
    conversation: { state: "from-the-dead" },
    appliedEventIds: [`${id}-e0`, `${id}-dead`],
  });
  assert.equal(
    await store.commit(v1, next(id, "late"), `${id}-late`, [], at),
    "conflict",
    "lost the version",
  );
  const doc = await db.collection<ConversationDoc>(CONVERSATIONS).findOne({ _id: id });
  assert.equal(doc?.version, 2);
  assert.equal((doc?.conversation as unknown as { state: string } | undefined)?.state, "from-the-dead");
  // The caller reloads and writes the version after it.
  assert.equal(await store.commit(doc, next(id, "late"), `${id}-late`, [], at), 3);
});

test("an event whose writer died between its version claim and its update: the redelivery finishes that write, once", async () => {
  const id = `c-${randomUUID()}`;
  const v1 = await created(id);
  const eventId = `${id}-e1`;
  // What the writer of eventId leaves when it dies right after claiming version 2.
  await deadWritersClaim(id, 2, eventId, {
    conversation: { state: "named" },
    appliedEventIds: [`${id}-e0`, eventId],
  });
  // The redelivery, deciding afresh on version 1, may reach another state; the claimed write wins.
  assert.equal(await store.commit(v1, next(id, "named-again"), eventId, [], at), "duplicate");
  const doc = await store.load(id);
  assert.equal(doc?.version, 2);
  assert.equal((doc?.conversation as unknown as { state: string } | undefined)?.state, "named");
  assert.deepEqual(doc?.appliedEventIds, [`${id}-e0`, eventId]);
});

test("an event applied longer ago than the conversation remembers is still a duplicate", async () => {
  const id = `c-${randomUUID()}`;
  let doc = await created(id);
  for (let i = 1; i <= 60; i++) {
    const version = await store.commit(doc, next(id, `state-${i}`), `${id}-e${i}`, [], at);
    assert.equal(version, i + 1);
    doc = (await store.load(id)) as ConversationDoc;
  }
  assert.equal(doc.appliedEventIds.length, 50, "the conversation remembers the latest 50");
  assert.ok(!doc.appliedEventIds.includes(`${id}-e1`) && !doc.appliedEventIds.includes(`${id}-e0`));
  // e1's version claim refuses it; e0, the first, is the conversation's own.
  assert.equal(await store.commit(doc, next(id, "again"), `${id}-e1`, [], at), "duplicate");
  assert.equal(await store.commit(doc, next(id, "again"), `${id}-e0`, [], at), "duplicate");
  assert.equal((await store.load(id))?.version, 61, "nothing written");
  // A new event still goes through.
  assert.equal(await store.commit(doc, next(id, "new"), `${id}-e61`, [], at), 62);
});

test("a cached version another replica has moved past: the commit built on it loses, after a reload it wins", async () => {
  const id = `c-${randomUUID()}`;
  const here = new ConversationStore(db);
  const there = new ConversationStore(db);
  assert.equal(await here.commit(null, next(id, "greeted"), `${id}-e0`, [], at), 1);
  const stale = here.cached(id);
  assert.equal(stale?.version, 1, "the writer remembers what it wrote");
  const current = await there.load(id);
  assert.equal(await there.commit(current, next(id, "named"), `${id}-e1`, [], at), 2);
  assert.equal(await here.commit(stale ?? null, next(id, "themed"), `${id}-e2`, [], at), "conflict");
  assert.equal(here.cached(id), undefined, "a lost commit forgets the stale copy");
  const reloaded = await here.load(id);
  assert.equal(reloaded?.version, 2);
  assert.equal(await here.commit(reloaded, next(id, "themed"), `${id}-e2`, [], at), 3);
  const doc = await here.load(id);
  assert.equal((doc?.conversation as unknown as { state: string } | undefined)?.state, "themed");
  assert.deepEqual(doc?.appliedEventIds, [`${id}-e0`, `${id}-e1`, `${id}-e2`]);
});

test("one event applied by two writers at once (a rebalance overlap): one writes it, the other learns it is a duplicate", async () => {
  const id = `c-${randomUUID()}`;
  const v1 = await created(id);
  const results = await Promise.all([
    store.commit(v1, next(id, "named-here"), `${id}-e1`, [], at),
    new ConversationStore(db).commit(v1, next(id, "named-there"), `${id}-e1`, [], at),
  ]);
  assert.deepEqual([...results].sort(), [2, "duplicate"].sort());
  const doc = await store.load(id);
  assert.equal(doc?.version, 2);
  assert.deepEqual(doc?.appliedEventIds, [`${id}-e0`, `${id}-e1`]);
});

test("a commit that takes a conversation for new when it exists loses, and changes nothing", async () => {
  const id = `c-${randomUUID()}`;
  await created(id);
  assert.equal(await store.commit(null, next(id, "greeted-again"), `${id}-again`, [], at), "conflict");
  const doc = await store.load(id);
  assert.equal(doc?.version, 1);
  assert.deepEqual(doc?.appliedEventIds, [`${id}-e0`]);
});

const head = (id: string) => db.collection<ConversationDoc>(CONVERSATIONS).findOne({ _id: id });

test("a version that changes no timer lives in its claim alone, and a load applies it", async () => {
  const id = `c-${randomUUID()}`;
  const v1 = await created(id);
  assert.equal(await store.commit(v1, next(id, "named"), `${id}-e1`, [], at), 2);
  assert.equal((await head(id))?.version, 1, "no update for it");
  const loaded = await new ConversationStore(db).load(id);
  assert.equal(loaded?.version, 2);
  assert.equal((loaded?.conversation as unknown as { state: string } | undefined)?.state, "named");
  assert.deepEqual(loaded?.appliedEventIds, [`${id}-e0`, `${id}-e1`]);
});

test("a version that changes the timers is written to the head at once, where the watchdog poller reads", async () => {
  const id = `c-${randomUUID()}`;
  const v1 = await created(id);
  const dueAt = new Date(at.getTime() - 1000);
  const generating = { ...next(id, "generating"), timers: [{ id: `${id}-t`, roundId: "r1", dueAt }] };
  assert.equal(await store.commit(v1, generating, `${id}-e1`, [], at), 2);
  const stored = await head(id);
  assert.equal(stored?.version, 2);
  assert.equal(stored?.timersPending, true);
  assert.ok((await store.due(at, 1000)).some((d) => d._id === id));
});

test("a writer that died after claiming a version with new timers: the next load writes them to the head", async () => {
  const id = `c-${randomUUID()}`;
  await created(id);
  const dueAt = new Date(at.getTime() - 1000);
  await deadWritersClaim(id, 2, `${id}-e1`, {
    conversation: { state: "generating" },
    appliedEventIds: [`${id}-e0`, `${id}-e1`],
    timers: [{ id: `${id}-t`, roundId: "r1", dueAt }],
    nextTimerAt: dueAt,
    timersPending: true,
  });
  assert.ok(!(await store.due(at, 1000)).some((d) => d._id === id), "not on the head yet");
  const loaded = await new ConversationStore(db).load(id);
  assert.equal(loaded?.version, 2);
  assert.equal((await head(id))?.timersPending, true);
  assert.ok((await store.due(at, 1000)).some((d) => d._id === id));
});

test("every eighth version is written to the head, so a load reads at most seven claims after it", async () => {
  const id = `c-${randomUUID()}`;
  let doc = await created(id);
  for (let i = 1; i <= 10; i++) {
    const version = await store.commit(doc, next(id, `state-${i}`), `${id}-e${i}`, [], at);
    assert.equal(version, i + 1);
    doc = store.cached(id) as ConversationDoc;
  }
  assert.equal((await head(id))?.version, 8);
  const loaded = await new ConversationStore(db).load(id);
  assert.equal(loaded?.version, 11);
  assert.equal((loaded?.conversation as unknown as { state: string } | undefined)?.state, "state-10");
});

test("a head left eight or more versions behind (its writers died before their head writes) is brought up by the next load", async () => {
  const id = `c-${randomUUID()}`;
  await created(id);
  for (let version = 2; version <= 10; version++)
    await deadWritersClaim(id, version, `${id}-e${version - 1}`, {
      conversation: { state: `state-${version}` },
    });
  const loaded = await new ConversationStore(db).load(id);
  assert.equal(loaded?.version, 10);
  assert.equal((await head(id))?.version, 10);
});

test("the retention sweep deletes conversations silent since before the cutoff, with their versions and claims; newer and waiting ones stay", async () => {
  const old = new Date("1999-06-01T00:00:00Z");
  const cutoff = new Date("2000-01-01T00:00:00Z");
  const recent = new Date("2000-02-01T00:00:00Z");
  const [gone, revived, waiting, fresh] = ["gone", "revived", "waiting", "fresh"].map(
    (name) => `c-${name}-${randomUUID()}`,
  ) as [string, string, string, string];
  assert.equal(await store.commit(null, next(gone, "greeted"), `${gone}-e0`, [], old), 1);
  assert.equal(await store.commit(await store.load(gone), next(gone, "named"), `${gone}-e1`, [], old), 2);
  await store.claim([`PNJ:wa:${gone}`], gone, old);
  // Silent at its head, but a later version (in its claim alone, see HEAD_EVERY) is recent.
  assert.equal(await store.commit(null, next(revived, "greeted"), `${revived}-e0`, [], old), 1);
  const r1 = await store.load(revived);
  assert.equal(await store.commit(r1, next(revived, "named"), `${revived}-e1`, [], recent), 2);
  assert.equal((await head(revived))?.version, 1);
  const timer = { id: `${waiting}-t`, roundId: "r1", dueAt: old };
  assert.equal(
    await store.commit(null, { ...next(waiting, "generating"), timers: [timer] }, `${waiting}-e0`, [], old),
    1,
  );
  assert.equal(await store.commit(null, next(fresh, "greeted"), `${fresh}-e0`, [], recent), 1);

  const sweeper = new ConversationStore(db);
  assert.deepEqual(await sweeper.sweepExpired(cutoff, 100), { removed: 1, examined: 3 });
  assert.equal(await head(gone), null);
  assert.equal(await db.collection(VERSIONS).countDocuments({ conversationId: gone }), 0);
  assert.equal(await db.collection(IDENTITIES).countDocuments({ conversationId: gone }), 0);
  for (const id of [revived, waiting, fresh]) assert.ok(await head(id), `${id} stays`);
  assert.equal((await head(revived))?.version, 2, "the lagging head is brought up to date");
  // Only the conversation waiting for its timer is still a candidate.
  assert.deepEqual(await sweeper.sweepExpired(cutoff, 100), { removed: 0, examined: 1 });
});

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import {
  ATTEMPTS,
  IngressStore,
  ingressIndexes,
  SENDS,
  SENT,
  STATUSES,
} from "@taituri/ingress-service/store";
import { ensureIndexes } from "@taituri/mongo";
import { type Db, MongoClient } from "mongodb";

/**
 * The ingress retention sweep on the real MongoDB-wire server: outbound claims, take-over attempts,
 * sent records and delivery statuses older than the cutoff go; recent ones stay.
 */
let infra: Infra;
let mongo: MongoClient;
let db: Db;

before(async () => {
  infra = await startInfra();
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(`ingretention_${randomUUID().slice(0, 8)}`);
  await ensureIndexes(db, ingressIndexes);
});

after(async () => {
  await mongo?.close();
  await infra?.stop();
});

async function messageAt(store: IngressStore, conversationId: string, at: Date) {
  const outboundId = `${conversationId}/o1`;
  const wamid = `wamid.${randomUUID()}`;
  assert.equal(
    await store.insertClaim({
      _id: outboundId,
      conversationId,
      status: "sending",
      leaseUntil: at,
      attempts: 1,
      createdAt: at,
      updatedAt: at,
    }),
    "inserted",
  );
  assert.equal(await store.startAttempt(outboundId, 2, at), true);
  assert.equal(await store.recordSent({ _id: outboundId, wamid, conversationId, at }), "inserted");
  assert.equal(
    await store.applyStatus({
      _id: wamid,
      status: "delivered",
      rank: 2,
      at,
      conversationId,
      errors: [],
      updatedAt: at,
    }),
    "applied",
  );
  return { outboundId, wamid };
}

test("the retention sweep deletes outbound claims, attempts, sent records and statuses from before the cutoff; recent ones stay", async () => {
  const store = new IngressStore(db);
  const old = new Date("1999-06-01T00:00:00Z");
  const cutoff = new Date("2000-01-01T00:00:00Z");
  const recent = new Date("2000-02-01T00:00:00Z");
  const gone = await messageAt(store, `c-gone-${randomUUID()}`, old);
  const kept = await messageAt(store, `c-kept-${randomUUID()}`, recent);

  assert.deepEqual(await store.sweepExpired(cutoff, 100), {
    sends: 1,
    attempts: 1,
    sent: 1,
    statuses: 1,
    examined: 1,
  });
  assert.equal(await store.findClaim(gone.outboundId), null);
  assert.equal(await store.findSent(gone.outboundId), null);
  assert.equal(await store.findSentByWamid(gone.wamid), null);
  assert.equal(await db.collection(ATTEMPTS).countDocuments({ _id: `${gone.outboundId}#2` as never }), 0);
  assert.equal(await db.collection(STATUSES).countDocuments({ _id: gone.wamid as never }), 0);

  assert.ok(await store.findClaim(kept.outboundId), "the recent claim stays");
  assert.ok(await store.findSentByWamid(kept.wamid), "and its sent record");
  assert.equal(await db.collection(ATTEMPTS).countDocuments({ _id: `${kept.outboundId}#2` as never }), 1);
  assert.equal(await db.collection(STATUSES).countDocuments({ _id: kept.wamid as never }), 1);
  // Nothing older is left: a second sweep finds nothing.
  assert.deepEqual(await store.sweepExpired(cutoff, 100), {
    sends: 0,
    attempts: 0,
    sent: 0,
    statuses: 0,
    examined: 0,
  });
  for (const name of [SENDS, SENT]) assert.equal(await db.collection(name).countDocuments({}), 1);
});

test("the sweep goes a batch at a time and says when a batch was full", async () => {
  const store = new IngressStore(db);
  const old = new Date("1998-06-01T00:00:00Z");
  const cutoff = new Date("1999-01-01T00:00:00Z");
  for (let i = 0; i < 3; i++) await messageAt(store, `c-batch-${i}-${randomUUID()}`, old);
  assert.deepEqual(await store.sweepExpired(cutoff, 2), {
    sends: 2,
    attempts: 2,
    sent: 2,
    statuses: 2,
    examined: 2,
  });
  assert.deepEqual(await store.sweepExpired(cutoff, 2), {
    sends: 1,
    attempts: 1,
    sent: 1,
    statuses: 1,
    examined: 1,
  });
});

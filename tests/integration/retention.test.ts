import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import {
  CALLS,
  generationIndexes,
  IMAGES_FILES,
  MARKERS,
  ROUNDS,
  RoundStore,
} from "@taituri/generation-service/store";
import {
  ATTEMPTS,
  IngressStore,
  ingressIndexes,
  SENDS,
  SENT,
  STATUSES,
} from "@taituri/ingress-service/store";
import { ensureIndexes, ImageStore } from "@taituri/mongo";
import { type Db, MongoClient } from "mongodb";

/**
 * The retention sweeps on the real MongoDB-wire server. Generation: rounds, their markers and
 * their designs (GridFS files and chunks) older than the cutoff go; a recent round's stay, and so
 * does the cost ledger. Ingress: outbound claims, take-over attempts, sent records and delivery
 * statuses older than the cutoff go; recent ones stay.
 */
let infra: Infra;
let mongo: MongoClient;
let db: Db;

before(async () => {
  infra = await startInfra();
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(`retention_${randomUUID().slice(0, 8)}`);
  await ensureIndexes(db, [...generationIndexes, ...ingressIndexes]);
});

after(async () => {
  await mongo?.close();
  await infra?.stop();
});

describe("generation", () => {
  const png = { bytes: Buffer.alloc(300_000, 7), contentType: "image/png", filename: "d1.png" };

  async function roundAt(store: RoundStore, images: ImageStore, conversationId: string, at: Date) {
    const roundId = `${conversationId}/j1/r1`;
    const claim = await store.claim(
      { roundId, conversationId, shopId: "shop", shopperId: "shopper" },
      "worker",
      at,
      60_000,
      2,
    );
    assert.equal(claim.kind, "claimed");
    await store.callStarted({
      _id: `${roundId}#1.1`,
      roundId,
      shopId: "shop",
      attempt: 1,
      provider: "local",
      model: "svg",
      size: "512x512",
      quality: "n/a",
      images: 1,
      estimatedCents: 0,
      startedAt: at,
    });
    const imageId = `${roundId}/a1/d1`;
    await images.put(imageId, png);
    // GridFS dates an upload itself: age it as if it had been stored with the round.
    await db.collection(IMAGES_FILES).updateOne({ _id: imageId as never }, { $set: { uploadDate: at } });
    assert.equal(await store.finish(roundId, "completed", new Uint8Array([1, 2, 3]), at), true);
    return { roundId, imageId };
  }

  test("the retention sweep deletes rounds, markers and designs from before the cutoff; recent ones and the ledger stay", async () => {
    const store = new RoundStore(db);
    const images = new ImageStore(db);
    const old = new Date("1999-06-01T00:00:00Z");
    const cutoff = new Date("2000-01-01T00:00:00Z");
    const recent = new Date(Date.now() - 3 * 24 * 3600 * 1000);
    const gone = await roundAt(store, images, `c-gone-${randomUUID()}`, old);
    // A recent round: its design may still be behind a live design link of a paid order.
    const kept = await roundAt(store, images, `c-kept-${randomUUID()}`, recent);
    const goneFile = await db.collection(IMAGES_FILES).findOne({ _id: gone.imageId as never });
    assert.ok(goneFile, "the old design is stored");
    assert.ok(
      (await db.collection("images.chunks").countDocuments({ files_id: goneFile._id })) > 1,
      "in several chunks",
    );

    assert.deepEqual(await store.sweepExpired(images, cutoff, 100), {
      rounds: 1,
      markers: 1,
      images: 1,
      examined: 1,
    });
    assert.equal(await store.load(gone.roundId), null);
    assert.equal(await store.result(gone.roundId), undefined);
    assert.equal(await images.exists(gone.imageId), false);
    assert.equal(await db.collection("images.chunks").countDocuments({ files_id: goneFile._id }), 0);
    assert.equal((await store.callsOf(gone.roundId)).length, 1, "the cost ledger stays");

    assert.ok(await store.load(kept.roundId), "the recent round stays");
    assert.ok(await store.result(kept.roundId), "with its result");
    assert.deepEqual((await images.get(kept.imageId))?.bytes, png.bytes, "and its design");
    // Nothing older is left: a second sweep finds nothing.
    assert.deepEqual(await store.sweepExpired(images, cutoff, 100), {
      rounds: 0,
      markers: 0,
      images: 0,
      examined: 0,
    });
    assert.equal(await db.collection(ROUNDS).countDocuments({ _id: kept.roundId as never }), 1);
    assert.equal(await db.collection(MARKERS).countDocuments({ at: { $lt: cutoff } }), 0);
    assert.equal(await db.collection(CALLS).countDocuments({}), 2);
  });

  test("the sweep goes a batch at a time and says when a batch was full", async () => {
    const store = new RoundStore(db);
    const images = new ImageStore(db);
    const old = new Date("1998-06-01T00:00:00Z");
    const cutoff = new Date("1999-01-01T00:00:00Z");
    for (let i = 0; i < 3; i++) await roundAt(store, images, `c-batch-${i}-${randomUUID()}`, old);
    const first = await store.sweepExpired(images, cutoff, 2);
    assert.deepEqual(first, { rounds: 2, markers: 2, images: 2, examined: 2 });
    const second = await store.sweepExpired(images, cutoff, 2);
    assert.deepEqual(second, { rounds: 1, markers: 1, images: 1, examined: 1 });
  });
});

describe("ingress", () => {
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
});

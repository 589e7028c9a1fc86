import assert from "node:assert/strict";
import { test } from "node:test";
import type { Db } from "mongodb";
import { CacheForgetWatcher, replicasForgetting } from "./cache-epochs.ts";

const at = new Date("2026-12-07T10:00:00Z");
const seconds = (n: number) => new Date(at.getTime() + n * 1000);

test("a replica confirms with the announced token or any set after it; one silent before the announcement is not waited for", () => {
  const acks = [
    { _id: "seen:a", token: "t1", at: seconds(0) },
    { _id: "seen:b", token: "t2", at: seconds(-1) },
    { _id: "seen:c", token: "t0", at: seconds(-2) },
    { _id: "seen:d", token: null, at: seconds(-3) },
    { _id: "seen:gone", token: "t0", at: seconds(-30) },
    { _id: "forget", token: "t1", at: seconds(0) },
  ];
  assert.deepEqual(replicasForgetting(acks, new Set(["t1", "t2"]), seconds(-15)), {
    confirmed: ["a", "b"],
    unconfirmed: ["c", "d"],
  });
  assert.deepEqual(replicasForgetting([], new Set(["t1"]), seconds(-15)), { confirmed: [], unconfirmed: [] });
});

/** The watcher's collection as a map, with the three calls it makes. */
function fakeDb() {
  const docs = new Map<string, { _id: string; token: string | null; at: Date }>();
  const writes: string[] = [];
  const collection = {
    findOne: async ({ _id }: { _id: string }) => docs.get(_id) ?? null,
    updateOne: async ({ _id }: { _id: string }, update: { $set: { token: string | null } }) => {
      writes.push(`${_id}=${update.$set.token}`);
      docs.set(_id, { _id, token: update.$set.token, at });
    },
    deleteOne: async ({ _id }: { _id: string }) => {
      docs.delete(_id);
    },
  };
  return { db: { collection: () => collection } as unknown as Db, docs, writes };
}

test("the watcher takes the token it starts with as known, drops the cache once per new token and acks it after dropping", async () => {
  const { db, docs, writes } = fakeDb();
  docs.set("forget", { _id: "forget", token: "old", at });
  let now = 0;
  const events: string[] = [];
  const watcher = new CacheForgetWatcher(
    db,
    async () => {
      events.push(`forgot (acked ${writes.at(-1)})`);
    },
    { replica: "r1", now: () => now },
  );
  await watcher.start();
  assert.deepEqual(writes, ["seen:r1=old"], "acks at start");
  assert.equal(await watcher.check(), false, "a token older than the replica is no news");
  docs.set("forget", { _id: "forget", token: "new", at });
  now = 1000;
  assert.equal(await watcher.check(), true);
  assert.deepEqual(events, ["forgot (acked seen:r1=old)"], "dropped before the ack");
  assert.deepEqual(writes, ["seen:r1=old", "seen:r1=new"]);
  now = 2000;
  assert.equal(await watcher.check(), false, "the same token again is not dropped twice");
  assert.equal(writes.length, 2);
  now = 6000;
  await watcher.check();
  assert.deepEqual(
    writes.at(-1),
    "seen:r1=new",
    "the ack is refreshed every few seconds: the replica is alive",
  );
  assert.equal(writes.length, 3);
  await watcher.stop();
  assert.equal(docs.has("seen:r1"), false, "a stopped replica is not waited for");
});

test("a failed ack is written again at the next check, and a first token set after start is news", async () => {
  const { db, docs, writes } = fakeDb();
  const watcher = new CacheForgetWatcher(db, async () => {}, { replica: "r2", now: () => 0 });
  await watcher.start();
  assert.deepEqual(writes, ["seen:r2=null"]);
  docs.set("forget", { _id: "forget", token: "first", at });
  const collection = db.collection("x") as unknown as { updateOne: (...args: unknown[]) => Promise<void> };
  const working = collection.updateOne;
  collection.updateOne = async () => {
    throw new Error("down");
  };
  await assert.rejects(watcher.check(), /down/);
  collection.updateOne = working;
  assert.equal(await watcher.check(), false, "dropped already");
  assert.deepEqual(writes, ["seen:r2=null", "seen:r2=first"], "but acked now");
});

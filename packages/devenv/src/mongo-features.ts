import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type Db, GridFSBucket, Long, MongoBulkWriteError, MongoClient, MongoServerError } from "mongodb";

export interface FeatureResult {
  feature: string;
  ok: boolean;
  detail: string;
  ms: number;
}

type Check = { feature: string; run: (db: Db, client: MongoClient) => Promise<string | undefined> };

function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}

/**
 * Exercises the MongoDB features our services might lean on, against whatever answers at `url`
 * (FerretDB locally, real mongod in Docker/CI). Used to keep docs/infrastructure.md honest:
 * `node scripts/infra.ts mongo-features`.
 */
export async function probeMongoFeatures(
  url: string,
  opts: { ttlWaitMs?: number } = {},
): Promise<FeatureResult[]> {
  const ttlWaitMs = opts.ttlWaitMs ?? 75_000;
  const checks: Check[] = [
    {
      feature: "unique index → duplicate key error code 11000",
      run: async (db) => {
        const c = db.collection("uniq");
        await c.createIndex({ email: 1 }, { unique: true });
        await c.insertOne({ email: "a@x" });
        const err = await c.insertOne({ email: "a@x" }).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(isDuplicateKey(err), `expected 11000, got ${String(err)}`);
        const e = err as MongoServerError;
        return `code 11000; keyValue ${e.keyValue ? "present" : "MISSING"}; errmsg: ${e.errmsg ?? e.message}`;
      },
    },
    {
      feature: "compound unique index",
      run: async (db) => {
        const c = db.collection("uniq2");
        await c.createIndex({ a: 1, b: 1 }, { unique: true });
        await c.insertMany([
          { a: 1, b: 1 },
          { a: 1, b: 2 },
        ]);
        await assert.rejects(c.insertOne({ a: 1, b: 1 }), isDuplicateKey);
        return undefined;
      },
    },
    {
      feature: "unique index on a nested field",
      run: async (db) => {
        const c = db.collection("uniq3");
        await c.createIndex({ "wa.phone": 1 }, { unique: true });
        await c.insertOne({ wa: { phone: "+358" } });
        await assert.rejects(c.insertOne({ wa: { phone: "+358" } }), isDuplicateKey);
        return undefined;
      },
    },
    {
      feature: "partial unique index (partialFilterExpression)",
      run: async (db) => {
        const c = db.collection("partial");
        await c.createIndex({ k: 1 }, { unique: true, partialFilterExpression: { active: true } });
        await c.insertMany([
          { k: 1, active: false },
          { k: 1, active: false },
          { k: 1, active: true },
        ]);
        await assert.rejects(c.insertOne({ k: 1, active: true }), isDuplicateKey);
        return undefined;
      },
    },
    {
      feature: "createIndex is idempotent; listIndexes; dropIndex",
      run: async (db) => {
        const c = db.collection("idx");
        await c.createIndex({ a: 1 }, { name: "a_1", unique: true });
        await c.createIndex({ a: 1 }, { name: "a_1", unique: true });
        assert.ok((await c.indexes()).some((i) => i.name === "a_1"));
        await c.dropIndex("a_1");
        assert.ok(!(await c.indexes()).some((i) => i.name === "a_1"));
        return undefined;
      },
    },
    {
      feature: "findOneAndUpdate with upsert ($inc + $setOnInsert, returnDocument after)",
      run: async (db) => {
        const c = db.collection<{ _id: string; n: number; at?: Date }>("foau");
        const a = await c.findOneAndUpdate(
          { _id: "k" },
          { $inc: { n: 1 }, $setOnInsert: { at: new Date() } },
          { upsert: true, returnDocument: "after" },
        );
        const b = await c.findOneAndUpdate(
          { _id: "k" },
          { $inc: { n: 1 }, $setOnInsert: { at: new Date(0) } },
          { upsert: true, returnDocument: "before" },
        );
        assert.equal(a?.n, 1);
        assert.equal(b?.n, 1);
        const now = await c.findOne({ _id: "k" });
        assert.equal(now?.n, 2);
        assert.notEqual(now?.at?.getTime(), 0, "$setOnInsert must not apply on update");
        return undefined;
      },
    },
    {
      feature: "findOneAndUpdate with sort (claim oldest pending)",
      run: async (db) => {
        const c = db.collection("queue");
        await c.insertMany([
          { s: "pending", t: 3 },
          { s: "pending", t: 1 },
          { s: "done", t: 0 },
        ]);
        const got = await c.findOneAndUpdate(
          { s: "pending" },
          { $set: { s: "claimed" } },
          { sort: { t: 1 }, returnDocument: "after" },
        );
        assert.equal(got?.t, 1);
        return undefined;
      },
    },
    {
      feature: "updateOne $push",
      run: async (db) => {
        const c = db.collection("push");
        await c.insertOne({ _id: 1 as never, xs: [1] });
        await c.updateOne({ _id: 1 as never }, { $push: { xs: 2 } as never });
        await c.updateOne({ _id: 1 as never }, { $push: { xs: { $each: [3, 4] } } as never });
        assert.deepEqual((await c.findOne({ _id: 1 as never }))?.xs, [1, 2, 3, 4]);
        return "plain and $each";
      },
    },
    {
      feature: "updateOne $push with $slice (bounded history)",
      run: async (db) => {
        const c = db.collection("push2");
        await c.insertOne({ _id: 1 as never, xs: [1, 2] });
        await c.updateOne({ _id: 1 as never }, { $push: { xs: { $each: [3, 4, 5], $slice: -3 } } as never });
        assert.deepEqual((await c.findOne({ _id: 1 as never }))?.xs, [3, 4, 5]);
        return undefined;
      },
    },
    {
      feature: "updateOne $pull by value",
      run: async (db) => {
        const c = db.collection("pull");
        await c.insertOne({ _id: 1 as never, xs: [1, 2, 3, 2] });
        await c.updateOne({ _id: 1 as never }, { $pull: { xs: 2 } as never });
        assert.deepEqual((await c.findOne({ _id: 1 as never }))?.xs, [1, 3]);
        return undefined;
      },
    },
    {
      feature: "updateOne $pull by condition ({ $gte: n })",
      run: async (db) => {
        const c = db.collection("pull2");
        await c.insertOne({ _id: 1 as never, xs: [1, 4, 5] });
        await c.updateOne({ _id: 1 as never }, { $pull: { xs: { $gte: 4 } } as never });
        assert.deepEqual((await c.findOne({ _id: 1 as never }))?.xs, [1]);
        return undefined;
      },
    },
    {
      feature: "updateOne $pull of a sub-document by exact equality",
      run: async (db) => {
        const c = db.collection("pull3");
        await c.insertOne({
          _id: 1 as never,
          ys: [
            { id: "a", n: 1 },
            { id: "b", n: 2 },
          ],
        });
        await c.updateOne({ _id: 1 as never }, { $pull: { ys: { id: "a", n: 1 } } as never });
        assert.deepEqual((await c.findOne({ _id: 1 as never }))?.ys, [{ id: "b", n: 2 }]);
        return undefined;
      },
    },
    {
      feature: "updateOne $pull of sub-documents by partial match ({ id: 'a' })",
      run: async (db) => {
        const c = db.collection("pull4");
        await c.insertOne({
          _id: 1 as never,
          ys: [
            { id: "a", n: 1 },
            { id: "b", n: 2 },
          ],
        });
        await c.updateOne({ _id: 1 as never }, { $pull: { ys: { id: "a" } } as never });
        assert.deepEqual((await c.findOne({ _id: 1 as never }))?.ys, [{ id: "b", n: 2 }]);
        return undefined;
      },
    },
    {
      feature: "$addToSet",
      run: async (db) => {
        const c = db.collection("ats");
        await c.insertOne({ _id: 1 as never, xs: [1] });
        await c.updateOne({ _id: 1 as never }, { $addToSet: { xs: { $each: [1, 2] } } as never });
        assert.deepEqual((await c.findOne({ _id: 1 as never }))?.xs, [1, 2]);
        return undefined;
      },
    },
    {
      feature: "$set / $unset of nested fields (dot notation)",
      run: async (db) => {
        const c = db.collection("nested");
        await c.insertOne({ _id: 1 as never, a: { b: { c: 1 }, keep: true } });
        await c.updateOne(
          { _id: 1 as never },
          { $set: { "a.b.c": 2, "a.new.deep": "x" }, $unset: { "a.keep": "" } },
        );
        const d = await c.findOne({ _id: 1 as never });
        assert.deepEqual(d?.a, { b: { c: 2 }, new: { deep: "x" } });
        return undefined;
      },
    },
    {
      feature: "$inc (int, double, Long), $min/$max, $currentDate",
      run: async (db) => {
        const c = db.collection("inc");
        await c.insertOne({ _id: 1 as never, i: 1, f: 0.5, l: Long.fromNumber(1), m: 5 });
        await c.updateOne(
          { _id: 1 as never },
          { $inc: { i: 2, f: 0.25, l: Long.fromNumber(2) }, $max: { m: 9 }, $currentDate: { at: true } },
        );
        const d = await c.findOne({ _id: 1 as never }, { promoteLongs: false });
        assert.equal(d?.i, 3);
        assert.equal(d?.f, 0.75);
        assert.equal(String(d?.l), "3");
        assert.equal(d?.m, 9);
        assert.ok(d?.at instanceof Date);
        return undefined;
      },
    },
    {
      feature: "query filters",
      run: async (db) => {
        const c = db.collection("filters");
        await c.insertMany([
          { n: 1, s: "a", tags: ["x"], o: [{ k: 1 }], n2: [1, 5] },
          { n: 2, s: "b", tags: ["y"], o: [{ k: 2 }], n2: [1] },
          { n: 3, s: "c" },
        ]);
        const cases: [string, Record<string, unknown>, number][] = [
          ["$lt", { n: { $lt: 3 } }, 2],
          ["$in", { s: { $in: ["a", "c"] } }, 2],
          ["$ne", { s: { $ne: "a" } }, 2],
          ["$exists: false", { tags: { $exists: false } }, 1],
          ["$elemMatch on sub-documents", { o: { $elemMatch: { k: { $gt: 1 } } } }, 1],
          ["$elemMatch on scalars", { n2: { $elemMatch: { $gte: 4 } } }, 1],
          ["$regex", { s: { $regex: "^[ab]$" } }, 2],
          ['array membership (tags: "x")', { tags: "x" }, 1],
          ["$or", { $or: [{ n: 1 }, { s: "c" }] }, 2],
          ['dot path into array of sub-docs ("o.k": 2)', { "o.k": 2 }, 1],
          ["$nin", { s: { $nin: ["a"] } }, 2],
        ];
        const failed: string[] = [];
        for (const [name, filter, expected] of cases) {
          const got = await c.countDocuments(filter).catch((e: Error) => e.message);
          if (got !== expected) failed.push(`${name}: got ${got}, expected ${expected}`);
        }
        if (failed.length > 0) throw new Error(failed.join("; "));
        return cases.map(([name]) => name).join(", ");
      },
    },
    {
      feature: "sort + skip + limit + projection, distinct",
      run: async (db) => {
        const c = db.collection("page");
        await c.insertMany([5, 3, 1, 4, 2].map((n) => ({ n, g: n % 2 })));
        const page = await c
          .find({}, { projection: { _id: 0, n: 1 } })
          .sort({ n: -1 })
          .skip(1)
          .limit(2)
          .toArray();
        assert.deepEqual(page, [{ n: 4 }, { n: 3 }]);
        assert.deepEqual((await c.distinct("g")).sort(), [0, 1]);
        return undefined;
      },
    },
    {
      feature: "aggregate $match + $group (one accumulator) + $sort",
      run: async (db) => {
        const c = db.collection("agg");
        await c.insertMany([
          { u: "a", v: 1 },
          { u: "a", v: 2 },
          { u: "b", v: 5 },
        ]);
        const rows = await c
          .aggregate([
            { $match: { v: { $gt: 0 } } },
            { $group: { _id: "$u", total: { $sum: "$v" } } },
            { $sort: { _id: 1 } },
          ])
          .toArray();
        assert.deepEqual(rows, [
          { _id: "a", total: 3 },
          { _id: "b", total: 5 },
        ]);
        return undefined;
      },
    },
    {
      feature: "aggregate $group with two accumulators",
      run: async (db) => {
        const c = db.collection("agg2");
        await c.insertMany([
          { u: "a", v: 1 },
          { u: "a", v: 2 },
        ]);
        const rows = await c
          .aggregate([{ $group: { _id: "$u", total: { $sum: "$v" }, n: { $sum: 1 } } }])
          .toArray();
        assert.deepEqual(rows, [{ _id: "a", total: 3, n: 2 }]);
        return undefined;
      },
    },
    {
      feature: "aggregate $lookup",
      run: async (db) => {
        await db.collection("lk_orders").insertOne({ _id: 1 as never, user: "u1" });
        await db.collection("lk_users").insertOne({ _id: "u1" as never, name: "Ann" });
        const rows = await db
          .collection("lk_orders")
          .aggregate([{ $lookup: { from: "lk_users", localField: "user", foreignField: "_id", as: "u" } }])
          .toArray();
        assert.equal(rows[0]?.u?.[0]?.name, "Ann");
        return undefined;
      },
    },
    {
      feature: "insertMany ordered:false with duplicates",
      run: async (db) => {
        const c = db.collection("im");
        await c.createIndex({ k: 1 }, { unique: true });
        const err = await c
          .insertMany([{ k: 1 }, { k: 1 }, { k: 2 }, { k: 2 }, { k: 3 }], { ordered: false })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        assert.ok(err instanceof MongoBulkWriteError, `expected MongoBulkWriteError, got ${String(err)}`);
        const codes = (Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors]).map(
          (w) => w.code,
        );
        assert.equal(
          await c.countDocuments(),
          3,
          "non-duplicates after the first error must still be inserted",
        );
        return `MongoBulkWriteError, insertedCount=${err.insertedCount}, writeErrors codes=${codes.join(",")}`;
      },
    },
    {
      feature: "bulkWrite (insertOne/updateOne upsert/updateMany/replaceOne/deleteOne, ordered)",
      run: async (db) => {
        const c = db.collection<{ _id: string; v: number }>("bw");
        const r = await c.bulkWrite([
          { insertOne: { document: { _id: "a", v: 1 } } },
          { updateOne: { filter: { _id: "b" }, update: { $set: { v: 2 } }, upsert: true } },
          { updateMany: { filter: { v: { $gte: 1 } }, update: { $inc: { v: 10 } } } },
          { replaceOne: { filter: { _id: "a" }, replacement: { v: 100 } } },
          { deleteOne: { filter: { _id: "b" } } },
        ]);
        assert.equal(r.insertedCount, 1);
        assert.equal(r.upsertedCount, 1);
        assert.equal(r.deletedCount, 1);
        assert.deepEqual(await c.find().toArray(), [{ _id: "a", v: 100 }]);
        return `inserted ${r.insertedCount}, upserted ${r.upsertedCount}, modified ${r.modifiedCount}, deleted ${r.deletedCount}`;
      },
    },
    {
      feature: "GridFSBucket upload + download (600 KiB, 3 chunks)",
      run: async (db) => {
        const bucket = new GridFSBucket(db, { bucketName: "files" });
        const data = randomBytes(600 * 1024);
        const id = await new Promise<unknown>((resolve, reject) => {
          const up = bucket.openUploadStream("art.png", { metadata: { kind: "test" } });
          up.once("error", reject);
          up.once("finish", () => resolve(up.id));
          up.end(data);
        });
        const chunks: Buffer[] = [];
        for await (const chunk of bucket.openDownloadStream(id as never)) chunks.push(chunk as Buffer);
        assert.ok(Buffer.concat(chunks).equals(data), "downloaded bytes differ");
        await bucket.delete(id as never);
        return undefined;
      },
    },
    {
      feature: "transactions (session.withTransaction)",
      run: async (db, client) => {
        const session = client.startSession();
        try {
          await session.withTransaction(async () => {
            await db.collection("tx").insertOne({ a: 1 }, { session });
          });
        } finally {
          await session.endSession();
        }
        return undefined;
      },
    },
    {
      feature: "change streams (collection.watch)",
      run: async (db) => {
        const stream = db.collection("cs").watch();
        try {
          await Promise.race([
            stream.tryNext(),
            new Promise((_, reject) => setTimeout(() => reject(new Error("no answer in 3s")), 3_000).unref()),
          ]);
        } finally {
          await stream.close();
        }
        return undefined;
      },
    },
    {
      feature: `TTL index (expireAfterSeconds) created and documents expire (waits ≤ ${Math.round(ttlWaitMs / 1000)}s)`,
      run: async (db) => {
        const c = db.collection("ttl");
        await c.createIndex({ at: 1 }, { expireAfterSeconds: 1 });
        const idx = (await c.indexes()).find((i) => i.expireAfterSeconds !== undefined);
        assert.ok(idx, "index created but expireAfterSeconds not reported back");
        await c.insertOne({ at: new Date(Date.now() - 10_000) });
        const deadline = Date.now() + ttlWaitMs;
        const t0 = Date.now();
        while (Date.now() < deadline) {
          if ((await c.countDocuments()) === 0)
            return `index created; expired after ~${Math.round((Date.now() - t0) / 1000)}s`;
          await new Promise((r) => setTimeout(r, 2_000));
        }
        throw new Error(
          `index created, but the document was NOT removed within ${Math.round(ttlWaitMs / 1000)}s`,
        );
      },
    },
  ];

  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
  const db = client.db(`features_${randomBytes(4).toString("hex")}`);
  const results: FeatureResult[] = [];
  try {
    for (const check of checks) {
      const t0 = performance.now();
      try {
        const detail = await check.run(db, client);
        results.push({ feature: check.feature, ok: true, detail: detail ?? "", ms: performance.now() - t0 });
      } catch (err) {
        const e = err as MongoServerError & { actual?: unknown; expected?: unknown };
        const diff =
          err instanceof assert.AssertionError
            ? ` (actual ${JSON.stringify(e.actual)}, expected ${JSON.stringify(e.expected)})`
            : "";
        const code =
          typeof e.code === "number" ? ` (code ${e.code}${e.codeName ? ` ${e.codeName}` : ""})` : "";
        results.push({
          feature: check.feature,
          ok: false,
          detail: `${e.message.split("\n")[0]}${diff}${code}`,
          ms: performance.now() - t0,
        });
      }
    }
  } finally {
    await db.dropDatabase().catch(() => {});
    await client.close();
  }
  return results;
}

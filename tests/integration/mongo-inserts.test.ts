import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { GroupInserter } from "@taituri/mongo";
import { type Db, MongoClient } from "mongodb";

/**
 * GroupInserter on the real MongoDB-wire server: concurrent claims batched into few insertMany
 * commands, and each caller told its own outcome (inserted, duplicate, or its document's error).
 */
let infra: Infra;
let mongo: MongoClient;
let db: Db;
const inserts: number[] = [];

before(async () => {
  infra = await startInfra();
  mongo = new MongoClient(infra.mongo.url, { monitorCommands: true });
  mongo.on("commandStarted", (event) => {
    if (event.commandName === "insert") inserts.push((event.command.documents as unknown[]).length);
  });
  db = mongo.db(`inserts_${randomUUID().slice(0, 8)}`);
});

after(async () => {
  await mongo?.close();
  await infra?.stop();
});

test("concurrent claims: one insert per id wins, the rest are duplicates, in a few batches", async () => {
  const claims = db.collection<{ _id: string; n: number }>("claims");
  await claims.insertOne({ _id: "held-before", n: -1 });
  const inserter = new GroupInserter(claims);
  inserts.length = 0;
  // 40 ids, each claimed by three callers at once, and one id someone held before.
  const ids = [...Array.from({ length: 40 }, (_, i) => `id-${i}`), "held-before"];
  const attempts = ids.flatMap((id) => [0, 1, 2].map((n) => ({ id, n })));
  const outcomes = await Promise.all(attempts.map(({ id, n }) => inserter.insert({ _id: id, n })));
  for (const id of ids) {
    const won = attempts.filter((a, i) => a.id === id && outcomes[i] === "inserted").length;
    assert.equal(won, id === "held-before" ? 0 : 1, `winners for ${id}`);
  }
  assert.equal(outcomes.filter((o) => o === "duplicate").length, attempts.length - 40);
  assert.equal(await claims.countDocuments(), 41);
  assert.equal(
    inserts.reduce((a, b) => a + b, 0),
    attempts.length,
    "every document sent once",
  );
  assert.ok(
    inserts.length < attempts.length / 10,
    `${inserts.length} insert commands for ${attempts.length} documents`,
  );
});

test("a document the server refuses fails its own caller only", async () => {
  const docs = db.collection<{ _id: string; [key: string]: unknown }>("refusals");
  const inserter = new GroupInserter(docs);
  const [a, bad, c] = [
    inserter.insert({ _id: "a" }),
    inserter.insert({ _id: "b", $notAField: 1 }),
    inserter.insert({ _id: "c" }),
  ];
  assert.equal(await a, "inserted");
  await assert.rejects(
    bad,
    (error: Error & { code?: number }) => error.code !== 11000 && /\$notAField/.test(error.message),
  );
  assert.equal(await c, "inserted");
  assert.deepEqual((await docs.find().toArray()).map((d) => d._id).sort(), ["a", "c"]);
});

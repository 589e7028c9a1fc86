import assert from "node:assert/strict";
import { test } from "node:test";
import type { Collection, Document } from "mongodb";
import { GroupInserter } from "./inserts.ts";

/** A collection whose insertMany calls are recorded and answered by the test. */
function fakeCollection() {
  const calls: { docs: Document[]; answer: (error?: unknown) => void }[] = [];
  const collection = {
    insertMany(docs: Document[]) {
      return new Promise((resolve, reject) => {
        calls.push({
          docs,
          answer: (error) => (error ? reject(error) : resolve({ insertedCount: docs.length })),
        });
      });
    },
  } as unknown as Collection<{ _id: string }>;
  return { collection, calls };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("a document alone goes at once; those arriving meanwhile go together in the next batch", async () => {
  const { collection, calls } = fakeCollection();
  const inserter = new GroupInserter(collection);
  const first = inserter.insert({ _id: "a" });
  await tick();
  assert.deepEqual(
    calls.map((c) => c.docs.map((d) => d._id)),
    [["a"]],
  );
  const rest = ["b", "c", "d"].map((id) => inserter.insert({ _id: id }));
  await tick();
  assert.equal(calls.length, 1, "nothing more is sent while a batch is in flight");
  calls[0]?.answer();
  assert.equal(await first, "inserted");
  await tick();
  assert.deepEqual(
    calls.map((c) => c.docs.map((d) => d._id)),
    [["a"], ["b", "c", "d"]],
  );
  calls[1]?.answer();
  assert.deepEqual(await Promise.all(rest), ["inserted", "inserted", "inserted"]);
});

test("batches hold at most maxBatch documents", async () => {
  const { collection, calls } = fakeCollection();
  const inserter = new GroupInserter(collection, { maxBatch: 2 });
  const all = ["a", "b", "c", "d", "e"].map((id) => inserter.insert({ _id: id }));
  for (let i = 0; i < 3; i++) {
    await tick();
    calls[i]?.answer();
  }
  await Promise.all(all);
  assert.deepEqual(
    calls.map((c) => c.docs.map((d) => d._id)),
    [["a"], ["b", "c"], ["d", "e"]],
  );
});

test("an error that names no document fails every caller of its batch, and the next batch still goes", async () => {
  const { collection, calls } = fakeCollection();
  const inserter = new GroupInserter(collection);
  const first = inserter.insert({ _id: "a" });
  const queued = [inserter.insert({ _id: "b" }), inserter.insert({ _id: "c" })];
  await tick();
  const lost = new Error("connection reset");
  calls[0]?.answer(lost);
  await assert.rejects(first, (error) => error === lost);
  await tick();
  calls[1]?.answer(lost);
  for (const q of queued) await assert.rejects(q, (error) => error === lost);
  const later = inserter.insert({ _id: "d" });
  await tick();
  calls[2]?.answer();
  assert.equal(await later, "inserted");
});

test("with minIntervalMs under load, the next batch waits that long after the previous one started; idle, a document goes at once", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let clock = 1_000;
  t.mock.method(performance, "now", () => clock);
  const { collection, calls } = fakeCollection();
  const inserter = new GroupInserter(collection, { minIntervalMs: 10 });
  const first = inserter.insert({ _id: "a" });
  await tick();
  assert.equal(calls.length, 1, "idle: at once");
  calls[0]?.answer();
  await first;
  // 25 arrive 3 ms after the first batch started: ~2.6 per 10 ms at this rate, so they wait for
  // the remaining 7 ms and go together.
  clock += 3;
  const burst = Array.from({ length: 25 }, (_, i) => `b${i}`);
  const next = burst.map((id) => inserter.insert({ _id: id }));
  await tick();
  assert.equal(calls.length, 1, "too soon after the last statement");
  clock += 7;
  t.mock.timers.tick(7);
  await tick();
  assert.deepEqual(
    calls.map((c) => c.docs.map((d) => d._id)),
    [["a"], burst],
  );
  calls[1]?.answer();
  await Promise.all(next);
  // Long after: no wait.
  clock += 500;
  const late = inserter.insert({ _id: "d" });
  await tick();
  assert.equal(calls.length, 3);
  calls[2]?.answer();
  assert.equal(await late, "inserted");
});

test("with minIntervalMs at a document per interval or less, nothing waits: a wait would gather nothing", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let clock = 1_000;
  t.mock.method(performance, "now", () => clock);
  const { collection, calls } = fakeCollection();
  const inserter = new GroupInserter(collection, { minIntervalMs: 10 });
  for (let i = 0; i < 30; i++) {
    const inserted = inserter.insert({ _id: `d${i}` });
    await tick();
    assert.equal(calls.length, i + 1, `document ${i} went at once`);
    calls[i]?.answer();
    assert.equal(await inserted, "inserted");
    clock += 9.5; // 105 per second: just over one per interval, each within 10 ms of the last
  }
});

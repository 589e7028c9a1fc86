import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { KafkaMessage } from "kafkajs";
import { PartitionLane } from "./lane.ts";

/** Messages of `keys` (one each, offsets from `from`), valued key + offset so a test can name them. */
function messages(keys: string[], from = 100): KafkaMessage[] {
  return keys.map(
    (key, i) =>
      ({
        key: Buffer.from(key),
        value: Buffer.from(`${key}${from + i}`),
        offset: String(from + i),
        timestamp: "0",
        attributes: 0,
        headers: {},
      }) as KafkaMessage,
  );
}

/** A lane whose handler calls stay open until released, so a test can see what runs together. */
function gatedLane(concurrency: number, options: { stopped?: () => boolean } = {}) {
  const started: string[] = [];
  const open = new Map<string, (error?: Error) => void>();
  let maxInFlight = 0;
  let progress = 0;
  const lane = new PartitionLane({
    concurrency,
    stopped: options.stopped ?? (() => false),
    onProgress: () => {
      progress += 1;
    },
    handle: (message) =>
      new Promise<void>((resolve, reject) => {
        const name = message.value?.toString() ?? "";
        started.push(name);
        open.set(name, (error) => (error ? reject(error) : resolve()));
        maxInFlight = Math.max(maxInFlight, open.size);
      }).finally(() => open.delete(message.value?.toString() ?? "")),
  });
  const release = async (name: string, error?: Error) => {
    const finish = open.get(name);
    assert.ok(finish, `${name} is not in hand (in hand: ${[...open.keys()].join(", ")})`);
    finish(error);
    // Lets the lane record the outcome and start what may start.
    for (let i = 0; i < 5; i++) await new Promise((done) => setImmediate(done));
  };
  return {
    lane,
    started,
    release,
    inHand: () => [...open.keys()].sort(),
    max: () => maxInFlight,
    progress: () => progress,
  };
}

describe("PartitionLane: a partition's messages, fetched ahead of their handling", () => {
  test("different keys run together up to the limit; one key's messages wait for each other", async () => {
    const h = gatedLane(3);
    h.lane.add(messages(["a", "b", "a", "c", "d"]));
    // a100, b101, c103 start (a102 waits for a100; d104 for a free slot).
    assert.deepEqual(h.inHand(), ["a100", "b101", "c103"]);
    await h.release("a100");
    // The freed slot takes the lowest waiting offset whose key is idle: a102.
    assert.deepEqual(h.inHand(), ["a102", "b101", "c103"]);
    await h.release("b101");
    assert.deepEqual(h.inHand(), ["a102", "c103", "d104"]);
    for (const name of ["a102", "c103", "d104"]) await h.release(name);
    assert.deepEqual(h.started, ["a100", "b101", "c103", "a102", "d104"]);
    assert.equal(h.max(), 3);
    assert.equal(h.lane.size, 0);
  });

  test("a message fetched later starts at once in a free slot, not after the batch before it", async () => {
    const h = gatedLane(4);
    h.lane.add(messages(["a", "b"], 100));
    // The first batch's messages are still in hand when the next fetch brings more.
    h.lane.add(messages(["c", "a"], 102));
    assert.deepEqual(h.inHand(), ["a100", "b101", "c102"], "a103 waits only for a100, its key");
    await h.release("a100");
    assert.deepEqual(h.inHand(), ["a103", "b101", "c102"]);
  });

  test("the position follows the handled prefix, never past a message waiting or in hand", async () => {
    const h = gatedLane(3);
    h.lane.add(messages(["a", "b", "c"]));
    await h.release("c102");
    await h.release("b101");
    assert.equal(h.lane.position, undefined, "offset 100 is still in hand");
    assert.equal(h.progress(), 0);
    await h.release("a100");
    assert.equal(h.lane.position, "103");
    assert.equal(h.progress(), 1);
  });

  test("with a limit of 1 the partition is handled strictly in offset order", async () => {
    const h = gatedLane(1);
    h.lane.add(messages(["a", "b", "a", "c"]));
    for (const name of ["a100", "b101", "a102", "c103"]) {
      assert.deepEqual(h.inHand(), [name]);
      await h.release(name);
    }
    assert.equal(h.max(), 1);
    assert.equal(h.lane.position, "104");
  });

  test("offsets it already holds are skipped when a refetch brings them again", async () => {
    const h = gatedLane(4);
    h.lane.add(messages(["a", "b"], 100));
    await h.release("a100");
    // After a rebalance that kept the partition, the fetch starts again at the committed 100.
    h.lane.add(messages(["a", "b", "c"], 100));
    assert.deepEqual(h.inHand(), ["b101", "c102"]);
    assert.deepEqual(h.started, ["a100", "b101", "c102"]);
  });

  test("a message given up (stopping) ends the prefix and the lane starts nothing more", async () => {
    let stopped = false;
    const h = gatedLane(2, { stopped: () => stopped });
    h.lane.add(messages(["a", "b", "c", "d"]));
    await h.release("a100");
    assert.deepEqual(h.inHand(), ["b101", "c102"]);
    stopped = true;
    await h.release("b101", new Error("stopping during a retry"));
    assert.deepEqual(h.inHand(), ["c102"], "d103 is not started");
    await h.release("c102");
    await h.lane.idle();
    // a100 is handled; b101 was given up, so the position stays before it (c102 comes back too).
    assert.equal(h.lane.position, "101");
    assert.deepEqual(h.started, ["a100", "b101", "c102"]);
  });

  test("waiting for room resolves once the lane is down to the bound", async () => {
    const h = gatedLane(2);
    h.lane.add(messages(["a", "b", "c", "d"]));
    let roomy = false;
    const room = h.lane.whenSizeAtMost(2).then(() => {
      roomy = true;
    });
    await h.release("a100");
    assert.equal(roomy, false, "3 still waiting or in hand");
    await h.release("b101");
    await room;
    assert.equal(h.lane.size, 2);
  });

  test("a revoked lane starts nothing more and reports no progress; what is in hand finishes", async () => {
    const h = gatedLane(1);
    h.lane.add(messages(["a", "b"]));
    h.lane.revoke();
    await h.release("a100");
    await h.lane.idle();
    assert.deepEqual(h.started, ["a100"]);
    assert.equal(h.progress(), 0);
    h.lane.add(messages(["c"], 102));
    assert.deepEqual(h.started, ["a100"]);
  });
});

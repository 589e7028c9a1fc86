import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Batch, KafkaMessage } from "kafkajs";
import { handleBatch } from "./consumer.ts";

/** A fetched batch of `keys` (one message each, offsets from 100), with the runner's callbacks recorded. */
function fakeBatch(keys: string[], options: { running?: () => boolean } = {}) {
  const messages = keys.map(
    (key, i) =>
      ({
        key: Buffer.from(key),
        value: Buffer.from(`${key}${i}`),
        offset: String(100 + i),
        timestamp: "0",
        attributes: 0,
        headers: {},
      }) as KafkaMessage,
  );
  const resolved: string[] = [];
  const payload = {
    batch: { topic: "t", partition: 0, messages } as unknown as Batch,
    resolveOffset: (offset: string) => void resolved.push(offset),
    heartbeat: async () => {},
    isRunning: options.running ?? (() => true),
    isStale: () => false,
  };
  return { payload, resolved };
}

/** A handler whose calls stay open until released, so a test can see what runs together. */
function gatedHandler() {
  const started: string[] = [];
  const open = new Map<string, (error?: Error) => void>();
  let maxInFlight = 0;
  const handler = (_topic: string, _partition: number, message: KafkaMessage) =>
    new Promise<void>((resolve, reject) => {
      const name = message.value?.toString() ?? "";
      started.push(name);
      open.set(name, (error) => (error ? reject(error) : resolve()));
      maxInFlight = Math.max(maxInFlight, open.size);
    }).finally(() => open.delete(message.value?.toString() ?? ""));
  const release = async (name: string, error?: Error) => {
    const finish = open.get(name);
    assert.ok(finish, `${name} is not in flight (in flight: ${[...open.keys()].join(", ")})`);
    finish(error);
    // Lets the worker record the outcome and pick its next message.
    for (let i = 0; i < 5; i++) await new Promise((done) => setImmediate(done));
  };
  const settle = () => new Promise((done) => setImmediate(done));
  return { handler, started, release, settle, inFlight: () => [...open.keys()], max: () => maxInFlight };
}

describe("handleBatch: one fetched batch, keys in parallel", () => {
  test("different keys run together up to the limit; one key's messages wait for each other", async () => {
    const { payload } = fakeBatch(["a", "b", "a", "c", "d"]);
    const h = gatedHandler();
    const running = handleBatch(payload, 3, h.handler);
    await h.settle();
    // a0, b1, c3 start (a2 waits for a0; d4 for a free slot).
    assert.deepEqual(h.inFlight(), ["a0", "b1", "c3"]);
    await h.release("a0");
    // The freed slot takes the lowest waiting offset whose key is idle: a2.
    assert.deepEqual(h.inFlight().sort(), ["a2", "b1", "c3"]);
    await h.release("b1");
    assert.deepEqual(h.inFlight().sort(), ["a2", "c3", "d4"]);
    await h.release("a2");
    await h.release("c3");
    await h.release("d4");
    await running;
    assert.deepEqual(h.started, ["a0", "b1", "c3", "a2", "d4"]);
    assert.equal(h.max(), 3);
  });

  test("the committed position follows the handled prefix, never past a message in hand", async () => {
    const { payload, resolved } = fakeBatch(["a", "b", "c"]);
    const h = gatedHandler();
    const running = handleBatch(payload, 3, h.handler);
    await h.settle();
    await h.release("c2");
    await h.release("b1");
    assert.deepEqual(resolved, [], "offset 100 is still in hand");
    await h.release("a0");
    assert.deepEqual(resolved, ["100", "101", "102"]);
    await running;
  });

  test("with a limit of 1 the partition is handled strictly in offset order", async () => {
    const { payload } = fakeBatch(["a", "b", "a", "c"]);
    const h = gatedHandler();
    const running = handleBatch(payload, 1, h.handler);
    for (const name of ["a0", "b1", "a2", "c3"]) {
      await h.settle();
      assert.deepEqual(h.inFlight(), [name]);
      await h.release(name);
    }
    await running;
    assert.equal(h.max(), 1);
  });

  test("after a failure nothing new starts; messages in hand finish, then the error is thrown", async () => {
    const { payload, resolved } = fakeBatch(["a", "b", "c", "d"]);
    const h = gatedHandler();
    const running = handleBatch(payload, 2, h.handler);
    const outcome = running.then(
      () => "resolved",
      (error: Error) => error.message,
    );
    await h.settle();
    await h.release("a0");
    assert.deepEqual(h.inFlight().sort(), ["b1", "c2"]);
    await h.release("b1", new Error("stopping during a retry"));
    assert.deepEqual(h.inFlight(), ["c2"], "d3 is not started");
    await h.release("c2");
    assert.equal(await outcome, "stopping during a retry");
    // a0 is handled; b1 failed, so the position stays before it (c2 comes back too: at least once).
    assert.deepEqual(resolved, ["100"]);
    assert.deepEqual(h.started, ["a0", "b1", "c2"]);
  });

  test("a stopping consumer starts nothing more", async () => {
    let running = true;
    const { payload, resolved } = fakeBatch(["a", "b", "c"], { running: () => running });
    const h = gatedHandler();
    const batch = handleBatch(payload, 1, h.handler);
    await h.settle();
    running = false;
    await h.release("a0");
    await batch;
    assert.deepEqual(h.started, ["a0"]);
    assert.deepEqual(resolved, ["100"]);
  });
});

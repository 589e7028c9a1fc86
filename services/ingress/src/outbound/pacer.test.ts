import assert from "node:assert/strict";
import { test } from "node:test";
import { Pacer } from "./pacer.ts";

function clock() {
  let now = 0;
  return {
    now: () => now,
    sleep: async (ms: number) => {
      now += ms;
    },
  };
}

test("a number sends its burst at once, then one message per 1/rate seconds", async () => {
  const c = clock();
  const pacer = new Pacer(80, { burst: 2, ...c });
  assert.equal(await pacer.acquire("PN1"), 0);
  assert.equal(await pacer.acquire("PN1"), 0);
  assert.equal(await pacer.acquire("PN1"), 13);
  const before = c.now();
  for (let i = 0; i < 80; i++) await pacer.acquire("PN1");
  // 80 more messages take about one second of (fake) time: the rate holds.
  assert.ok(Math.abs(c.now() - before - 1000) <= 80, `took ${c.now() - before} ms`);
});

test("numbers are paced independently", async () => {
  const c = clock();
  const pacer = new Pacer(1, { burst: 1, ...c });
  assert.equal(await pacer.acquire("PN1"), 0);
  assert.equal(await pacer.acquire("PN2"), 0);
  assert.equal(await pacer.acquire("PN1"), 1000);
});

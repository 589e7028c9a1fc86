import assert from "node:assert/strict";
import { test } from "node:test";
import { Pacer, paceShare } from "./pacer.ts";

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

test("a replica paces at its share of the number's rate: two halves send no more than the whole", async () => {
  const a = new Pacer(80, { burst: 80, ...clock() });
  const b = new Pacer(80, { burst: 80, ...clock() });
  a.setShare(paceShare(3, 6));
  b.setShare(paceShare(3, 6));
  assert.equal(a.ratePerSecond + b.ratePerSecond, 80);
  // Each replica's burst is its share too: together 80 at once, then 80 per second.
  for (let i = 0; i < 40; i++) {
    assert.equal(await a.acquire("PN1"), 0);
    assert.equal(await b.acquire("PN1"), 0);
  }
  assert.ok((await a.acquire("PN1")) > 0);
  assert.ok((await b.acquire("PN1")) > 0);
});

test("a replica that owns no partition, or a sliver, keeps one message a second", () => {
  const pacer = new Pacer(80);
  pacer.setShare(paceShare(0, 12));
  assert.ok(pacer.ratePerSecond >= 1 && pacer.ratePerSecond <= 80 / 12);
  pacer.setShare(paceShare(12, 12));
  assert.equal(pacer.ratePerSecond, 80);
  assert.equal(paceShare(5, 0), 1);
});

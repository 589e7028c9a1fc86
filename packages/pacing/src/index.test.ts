import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffMs, RecentRate } from "./index.ts";

test("a steady rate is read back as the events it brings in a span", (t) => {
  let clock = 5_000;
  t.mock.method(performance, "now", () => clock);
  const rate = new RecentRate(100);
  // 200 per second, for a second: 2 per 10 ms.
  for (let i = 0; i < 200; i++) {
    rate.add();
    clock += 5;
  }
  const expected = rate.expectedWithin(10);
  assert.ok(expected > 1.8 && expected < 2.2, `expected ~2, got ${expected}`);
});

test("bursts count by their size, and the count fades once they stop", (t) => {
  let clock = 0;
  t.mock.method(performance, "now", () => clock);
  const rate = new RecentRate(100);
  for (let i = 0; i < 50; i++) {
    rate.add(5); // a fetch of 5 messages every 10 ms: 500 per second
    clock += 10;
  }
  const busy = rate.expectedWithin(10);
  assert.ok(busy > 4.5 && busy < 5.5, `expected ~5, got ${busy}`);
  clock += 1_000;
  assert.ok(rate.expectedWithin(10) < 0.01, "idle for a second: nothing expected");
});

test("a slow rate expects less than one event per span", (t) => {
  let clock = 0;
  t.mock.method(performance, "now", () => clock);
  const rate = new RecentRate(100);
  for (let i = 0; i < 100; i++) {
    rate.add();
    clock += 20; // 50 per second
  }
  assert.ok(rate.expectedWithin(10) < 0.6);
});

test("a window that is not positive is refused", () => {
  assert.throws(() => new RecentRate(0), RangeError);
});

test("backoff doubles up to the cap and jitters within the upper half", () => {
  assert.equal(
    backoffMs(1, 100, 10_000, () => 0),
    50,
  );
  assert.equal(
    backoffMs(1, 100, 10_000, () => 1),
    100,
  );
  assert.equal(
    backoffMs(4, 100, 10_000, () => 1),
    800,
  );
  assert.equal(
    backoffMs(30, 100, 10_000, () => 1),
    10_000,
  );
  assert.equal(
    backoffMs(30, 100, 10_000, () => 0),
    5_000,
  );
});

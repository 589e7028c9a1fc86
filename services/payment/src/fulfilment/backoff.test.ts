import assert from "node:assert/strict";
import { test } from "node:test";
import { retryCeilingMs, retryDelayMs } from "./backoff.ts";

const policy = { baseMs: 10_000, maxMs: 3_600_000 };

test("the ceiling doubles from the base after each failure, up to the max, and stays there", () => {
  const ceilings = Array.from({ length: 11 }, (_, i) => retryCeilingMs(i + 1, policy));
  assert.deepEqual(
    ceilings,
    [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000, 3_600_000, 3_600_000],
  );
  // Days of failures (an hour apart, so hundreds of attempts): still the max, never a last attempt.
  assert.equal(retryCeilingMs(500, policy), 3_600_000);
  assert.equal(retryCeilingMs(1_000_000, policy), 3_600_000);
});

test("full jitter: a uniform draw between 0 and the ceiling", () => {
  assert.equal(
    retryDelayMs(3, policy, () => 0),
    0,
  );
  assert.equal(
    retryDelayMs(3, policy, () => 0.5),
    20_000,
  );
  assert.equal(
    retryDelayMs(3, policy, () => 0.999_999),
    39_999,
  );
  for (let i = 0; i < 1000; i++) {
    const delay = retryDelayMs(12, policy);
    assert.ok(delay >= 0 && delay < 3_600_000, String(delay));
  }
});

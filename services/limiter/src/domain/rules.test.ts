import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { evaluate } from "./gcra.ts";
import { compileRules } from "./rules.ts";

test("the shipped rules file is valid", () => {
  const rules = compileRules(
    parse(readFileSync(new URL("../../rules/limits.yaml", import.meta.url), "utf8")),
  );
  assert.deepEqual(
    rules.ruleSets.get("generation-round")?.limits.map((limit) => [limit.name, limit.periodMs]),
    [
      ["shopper-burst", 600_000],
      ["shopper-daily", 86_400_000],
      ["shop-daily-cost", 86_400_000],
      ["global-minute", 60_000],
    ],
  );
});

test("a bad rules file names every problem", () => {
  assert.throws(
    () =>
      compileRules({
        limits: { a: { scope: "nowhere", limit: 0, period: "1y" } },
        ruleSets: { s: { limits: ["a", "missing"] } },
      }),
    (error: Error) =>
      /limits\.a\.scope/.test(error.message) &&
      /limits\.a\.limit/.test(error.message) &&
      /limits\.a\.period/.test(error.message),
  );
  assert.throws(
    () => compileRules({ limits: {}, ruleSets: { s: { limits: ["missing"] } } }),
    /ruleSets\.s\.limits\.0: unknown limit "missing"/,
  );
});

test("GCRA: a burst of `limit`, then one unit per interval", () => {
  const bucket = { periodMs: 600_000, limit: 3, cost: 1, shadow: false };
  let tat: number | undefined;
  for (let i = 0; i < 3; i++) {
    const decision = evaluate(bucket, tat, 0);
    assert.equal(decision.allowed, true);
    assert.equal(decision.remaining, 2 - i);
    tat = decision.newTat;
  }
  const denied = evaluate(bucket, tat, 0);
  assert.deepEqual([denied.allowed, denied.retryAfterMs, denied.resetAfterMs], [false, 200_000, 600_000]);
  assert.equal(evaluate(bucket, tat, 199_999).allowed, false);
  assert.equal(evaluate(bucket, tat, 200_000).allowed, true);
});

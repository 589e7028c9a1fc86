import assert from "node:assert/strict";
import { test } from "node:test";
import { formatPrice, ROUND_TIMING, worstRoundMs } from "./contracts.ts";

test("a round taken over after a crash still ends before the conversation's deadline", () => {
  // A live worker is never taken over: its lease outlasts a whole call and the margin.
  assert.ok(ROUND_TIMING.leaseMs >= ROUND_TIMING.providerTimeoutMs + ROUND_TIMING.attemptMarginMs);
  assert.ok(ROUND_TIMING.leaseMs < ROUND_TIMING.deadlineMs);
  assert.ok(worstRoundMs(ROUND_TIMING) < ROUND_TIMING.deadlineMs);
});

test("prices in minor units read in the currency's own units", () => {
  assert.equal(formatPrice(1990, "EUR", "en"), "€19.90");
  assert.equal(formatPrice(1990, "EUR", "es"), "19,90\u00a0€");
  assert.equal(formatPrice(1990, "JPY", "en"), "¥1,990");
  assert.equal(formatPrice(1990, "KWD", "en"), "KWD\u00a01.990");
});

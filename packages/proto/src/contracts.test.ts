import assert from "node:assert/strict";
import { test } from "node:test";
import { ROUND_TIMING, worstRoundMs } from "./contracts.ts";

test("a round taken over after a crash still ends before the conversation's deadline", () => {
  // A live worker is never taken over: its lease outlasts a whole call and the margin.
  assert.ok(ROUND_TIMING.leaseMs >= ROUND_TIMING.providerTimeoutMs + ROUND_TIMING.attemptMarginMs);
  assert.ok(ROUND_TIMING.leaseMs < ROUND_TIMING.deadlineMs);
  assert.ok(worstRoundMs(ROUND_TIMING) < ROUND_TIMING.deadlineMs);
});

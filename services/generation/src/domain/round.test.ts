import assert from "node:assert/strict";
import { test } from "node:test";
import { contracts } from "@taituri/proto";
import {
  type CallOutcome,
  failureReasonFor,
  isRetryable,
  mayHaveCharged,
  nextStep,
  type RoundView,
  requestProblem,
} from "./round.ts";

const now = new Date("2026-12-01T10:00:00Z");
const later = new Date(now.getTime() + 1000);
const earlier = new Date(now.getTime() - 1000);
const round = (over: Partial<RoundView>): RoundView => ({
  state: "in_progress",
  attempts: 1,
  leaseUntil: later,
  published: false,
  ...over,
});

test("a live lease is left alone, whatever the attempt", () => {
  assert.deepEqual(nextStep(round({}), now, 2), { kind: "busy", leaseUntil: later });
  assert.deepEqual(nextStep(round({ attempts: 2 }), now, 2), { kind: "busy", leaseUntil: later });
});

test("an expired lease is taken over until the attempts run out, then the round fails", () => {
  assert.deepEqual(nextStep(round({ leaseUntil: earlier }), now, 2), { kind: "take_over", attempt: 2 });
  assert.deepEqual(nextStep(round({ leaseUntil: earlier, attempts: 2 }), now, 2), { kind: "exhausted" });
  assert.deepEqual(nextStep(round({ leaseUntil: earlier }), now, 1), { kind: "exhausted" });
  // A lease ending exactly now has ended.
  assert.deepEqual(nextStep(round({ leaseUntil: now }), now, 3), { kind: "take_over", attempt: 2 });
});

test("a finished round is finished whatever its lease; only an unpublished one is published again", () => {
  for (const state of ["completed", "failed", "rejected"] as const) {
    assert.deepEqual(nextStep(round({ state, leaseUntil: earlier, attempts: 9 }), now, 2), {
      kind: "finished",
      published: false,
    });
    assert.deepEqual(nextStep(round({ state, published: true }), now, 2), {
      kind: "finished",
      published: true,
    });
  }
});

test("only no-charge outcomes are retried, and none of them counts as paid", () => {
  const all: CallOutcome[] = [
    "ok",
    "content_policy",
    "rate_limited",
    "quota",
    "unreachable",
    "bad_request",
    "server_error",
    "timeout",
    "malformed",
  ];
  assert.deepEqual(all.filter(isRetryable), ["rate_limited", "unreachable"]);
  assert.deepEqual(all.filter(mayHaveCharged), ["ok", "server_error", "timeout", "malformed"]);
  for (const outcome of all) assert.ok(!(isRetryable(outcome) && mayHaveCharged(outcome)), outcome);
});

test("a content refusal tells the shopper what to change; the rest say try later", () => {
  assert.match(failureReasonFor("content_policy"), /^content_policy: .*different name, theme or style/);
  assert.match(failureReasonFor("timeout"), /^provider_unavailable: .*try again/);
});

test("a name longer than the contract's limit is refused, counted in characters", () => {
  const limit = contracts.RECIPIENT_NAME_MAX_LENGTH;
  assert.equal(requestProblem({ recipient: "🎁".repeat(limit) }), undefined);
  assert.match(requestProblem({ recipient: "x".repeat(limit + 1) }) ?? "", /41 characters, over 40/);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { type AccessPolicy, decideAccess, type Rpc, refusal } from "./access.ts";

const policy: AccessPolicy = {
  callers: ["generation", "limiter-admin"],
  adminScope: "limiter.admin",
  adminSubjects: ["system:serviceaccount:ops:limiter-admin"],
};
const allowed = (rpc: Rpc, claims: Record<string, unknown>) => decideAccess(rpc, claims, policy).allowed;

test("listed callers consume and refund; nobody else does, whatever its scopes", () => {
  for (const rpc of ["consume", "refund"] as const) {
    assert.equal(allowed(rpc, { sub: "generation" }), true);
    assert.equal(allowed(rpc, { sub: "limiter-admin", scope: "limiter.admin" }), true);
    assert.equal(allowed(rpc, { sub: "payment" }), false);
    assert.equal(allowed(rpc, { sub: "payment", scope: "limiter.admin" }), false);
  }
});

test("Peek and ResetUsage need a listed caller with the admin scope, or an admin subject", () => {
  for (const rpc of ["peek", "reset_usage"] as const) {
    assert.equal(allowed(rpc, { sub: "limiter-admin", scope: "limiter.read limiter.admin" }), true);
    assert.equal(allowed(rpc, { sub: "limiter-admin", scope: ["limiter.admin"] }), true);
    assert.equal(allowed(rpc, { sub: "system:serviceaccount:ops:limiter-admin" }), true);
    assert.equal(allowed(rpc, { sub: "generation" }), false);
    assert.equal(allowed(rpc, { sub: "generation", scope: "limiter.administrator limiter" }), false);
    assert.equal(allowed(rpc, { sub: "generation", scope: 1 }), false);
    assert.equal(allowed(rpc, { sub: "stranger", scope: "limiter.admin" }), false);
  }
});

test("a refusal says what is missing", () => {
  const scope = decideAccess("reset_usage", { sub: "generation" }, policy);
  assert.ok(!scope.allowed);
  assert.equal(
    refusal("reset_usage", scope, policy),
    'ResetUsage needs the "limiter.admin" scope or an admin subject; "generation" has neither',
  );
  const caller = decideAccess("consume", { sub: "payment" }, policy);
  assert.ok(!caller.allowed);
  assert.equal(refusal("consume", caller, policy), '"payment" may not call Consume (not in LIMITER_CALLERS)');
});

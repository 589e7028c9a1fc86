import assert from "node:assert/strict";
import { test } from "node:test";
import { decideInternal, type InternalAccess, internalRefusal } from "./access.ts";

const access: InternalAccess = {
  callers: ["payment-admin", "support"],
  adminScope: "payment.admin",
  adminSubjects: ["system:serviceaccount:ops:payment-admin"],
};

test("listed callers read orders; a refund also needs the admin scope or an admin subject", () => {
  assert.equal(decideInternal("read_order", { sub: "support" }, access).allowed, true);
  assert.equal(decideInternal("refund", { sub: "support" }, access).allowed, false);
  assert.equal(
    decideInternal("refund", { sub: "payment-admin", scope: "payment.admin" }, access).allowed,
    true,
  );
  assert.equal(
    decideInternal("refund", { sub: "system:serviceaccount:ops:payment-admin" }, access).allowed,
    true,
  );
  assert.equal(
    decideInternal("read_order", { sub: "system:serviceaccount:ops:payment-admin" }, access).allowed,
    true,
  );
});

test("a caller not listed is refused everywhere, whatever its scopes", () => {
  for (const route of ["read_order", "refund"] as const) {
    const decision = decideInternal(route, { sub: "generation", scope: "payment.admin" }, access);
    assert.ok(!decision.allowed);
    assert.equal(
      internalRefusal(decision, access),
      `"generation" may not call the payment service's internal API (not in PAYMENT_INTERNAL_CALLERS)`,
    );
  }
  const noScope = decideInternal("refund", { sub: "support", scope: "payment.read" }, access);
  assert.ok(!noScope.allowed);
  assert.match(internalRefusal(noScope, access), /needs the "payment.admin" scope/);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { isAdmin } from "./admin.ts";

const policy = { scope: "limiter.admin", subjects: ["system:serviceaccount:ops:limiter-admin"] };

test("the admin scope or a listed subject makes an admin, nothing else does", () => {
  assert.equal(isAdmin({ sub: "ops", scope: "limiter.read limiter.admin" }, policy), true);
  assert.equal(isAdmin({ sub: "ops", scope: ["limiter.admin"] }, policy), true);
  assert.equal(isAdmin({ sub: "system:serviceaccount:ops:limiter-admin" }, policy), true);
  assert.equal(isAdmin({ sub: "generation" }, policy), false);
  assert.equal(isAdmin({ sub: "generation", scope: "limiter.administrator limiter" }, policy), false);
  assert.equal(isAdmin({ sub: "generation", scope: 1 }, policy), false);
  assert.equal(isAdmin({ scope: "" }, { scope: "limiter.admin", subjects: [] }), false);
});

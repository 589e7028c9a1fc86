import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { authorize, callerOf, scopesOf } from "./access.ts";

describe("callers", () => {
  test("the caller is the client (client_id, else azp), else the subject", () => {
    assert.equal(callerOf({ sub: "generation" }), "generation");
    assert.equal(callerOf({ sub: "9b1e-user", azp: "payment-admin" }), "payment-admin");
    assert.equal(callerOf({ sub: "x", azp: "y", client_id: "z" }), "z");
    assert.equal(callerOf({ sub: "", azp: 7 }), undefined);
  });

  test("scopes: a space-separated string or an array; anything else is none", () => {
    assert.deepEqual(scopesOf({ scope: "a  b" }), ["a", "b"]);
    assert.deepEqual(scopesOf({ scope: ["a", 1] }), ["a"]);
    assert.deepEqual(scopesOf({ scope: 1 }), []);
  });
});

describe("authorize", () => {
  const admin = {
    callers: ["ops", "generation"],
    scope: "x.admin",
    trusted: ["system:serviceaccount:ops:admin"],
  };

  test("a listed caller passes; a listed one needs the scope when the rule has one", () => {
    assert.deepEqual(authorize({ sub: "generation" }, { callers: ["generation"] }), {
      allowed: true,
      caller: "generation",
    });
    assert.equal(authorize({ sub: "ops", scope: "x.read x.admin" }, admin).allowed, true);
    assert.deepEqual(authorize({ sub: "generation", scope: "x.administrator" }, admin), {
      allowed: false,
      caller: "generation",
      missing: "scope",
    });
  });

  test("a caller not listed is refused whatever its scopes; a trusted one passes without a scope", () => {
    assert.deepEqual(authorize({ sub: "stranger", scope: "x.admin" }, admin), {
      allowed: false,
      caller: "stranger",
      missing: "caller",
    });
    assert.equal(authorize({ sub: "system:serviceaccount:ops:admin" }, admin).allowed, true);
    assert.equal(authorize({}, { callers: [] }).allowed, false);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Metadata, type ServerUnaryCall, type ServiceError, status } from "@grpc/grpc-js";
import { createLogger } from "@taituri/logging";
import { AuthError, type Verifier } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import { Registry } from "prom-client";
import { compileRules } from "../domain/rules.ts";
import { createMetrics } from "../metrics.ts";
import { createHandlers } from "./grpc.ts";
import type { OwnedKey, Store } from "./store.ts";

/**
 * Who may call which RPC, through the handlers with a verifier that maps a token to its claims and
 * a store that records what reached it: a refused call is PERMISSION_DENIED and never reaches the
 * store. The same on the real servers: tests/integration/limiter-admin.test.ts.
 */
const tokens: Record<string, Record<string, unknown>> = {
  generation: { sub: "generation" },
  admin: { sub: "limiter-admin", scope: "limiter.admin" },
  "admin-without-scope": { sub: "limiter-admin" },
  "scoped-stranger": { sub: "payment", scope: "limiter.admin" },
  "k8s-admin": { sub: "system:serviceaccount:ops:limiter-admin" },
};
const verifier: Verifier = {
  async verify(header) {
    const claims = tokens[header?.replace("Bearer ", "") ?? ""];
    if (!claims) throw new AuthError("ERR_JWS_INVALID: bad token");
    return claims;
  },
};
const rules = compileRules({
  limits: { burst: { scope: "shopper", limit: 3, period: "10m" } },
  ruleSets: { round: { limits: ["burst"] } },
});

function setup() {
  const reached: { op: string; key?: OwnedKey }[] = [];
  const outcome = { allowed: true, retryAfterMs: 0, replayed: false, limits: [] };
  const store = {
    consume: async (_r: unknown, _s: unknown, _c: number, key: OwnedKey | undefined) => {
      reached.push({ op: "consume", ...(key ? { key } : {}) });
      return outcome;
    },
    refund: async (key: OwnedKey) => {
      reached.push({ op: "refund", key });
      return "refunded" as const;
    },
    peek: async () => {
      reached.push({ op: "peek" });
      return outcome;
    },
    reset: async () => {
      reached.push({ op: "reset" });
      return 1;
    },
  } as unknown as Store;
  const handlers = createHandlers({
    store,
    rules: () => rules,
    verifier,
    access: {
      callers: ["generation", "limiter-admin"],
      adminScope: "limiter.admin",
      adminSubjects: ["system:serviceaccount:ops:limiter-admin"],
    },
    metrics: createMetrics(new Registry()),
    logger: createLogger({ service: "test", level: "silent" }),
  });
  /** Calls one handler as grpc-js would; resolves to the status code (OK = 0). */
  const call = (method: keyof typeof handlers, request: unknown, token: string) =>
    new Promise<{ code: number; details: string }>((resolve) => {
      const metadata = new Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      const handler = handlers[method] as (
        c: ServerUnaryCall<unknown, unknown>,
        cb: (e: ServiceError | null) => void,
      ) => void;
      handler({ request, metadata } as ServerUnaryCall<unknown, unknown>, (error) =>
        resolve({ code: error?.code ?? status.OK, details: error?.details ?? "" }),
      );
    });
  return { reached, call };
}

const subject = { shopId: "shop", shopperId: "s" };
const peek = limiter.PeekRequest.fromPartial({ subject, ruleSet: "round" });
const reset = limiter.ResetUsageRequest.fromPartial({ subject, ruleSet: "round" });

describe("limiter authorization per RPC", () => {
  test("Peek and ResetUsage without the admin scope: PERMISSION_DENIED, the store untouched", async () => {
    const t = setup();
    for (const token of ["generation", "admin-without-scope", "scoped-stranger"]) {
      for (const [method, request] of [
        ["peek", peek],
        ["resetUsage", reset],
      ] as const) {
        const answer = await t.call(method, request, token);
        assert.equal(answer.code, status.PERMISSION_DENIED, `${method} by ${token}`);
      }
    }
    const unknownSet = await t.call("resetUsage", { ...reset, ruleSet: "nope" }, "generation");
    assert.equal(unknownSet.code, status.PERMISSION_DENIED, "refused before the rule set is looked up");
    assert.deepEqual(t.reached, []);
    assert.equal((await t.call("peek", peek, "nobody")).code, status.UNAUTHENTICATED);
  });

  test("an admin (scope, or an admin subject) peeks and resets", async () => {
    const t = setup();
    for (const token of ["admin", "k8s-admin"]) {
      assert.equal((await t.call("peek", peek, token)).code, status.OK);
      assert.equal((await t.call("resetUsage", reset, token)).code, status.OK);
    }
    assert.deepEqual(
      t.reached.map((r) => r.op),
      ["peek", "reset", "peek", "reset"],
    );
  });

  test("Consume and Refund: listed callers only, each on its own idempotency keys", async () => {
    const t = setup();
    const consume = limiter.ConsumeRequest.fromPartial({
      subject,
      ruleSet: "round",
      cost: 1,
      idempotencyKey: "k",
    });
    assert.equal((await t.call("consume", consume, "generation")).code, status.OK);
    assert.equal((await t.call("refund", { idempotencyKey: "k" }, "generation")).code, status.OK);
    const stranger = await t.call("refund", { idempotencyKey: "k" }, "scoped-stranger");
    assert.equal(stranger.code, status.PERMISSION_DENIED);
    assert.match(stranger.details, /"payment" may not call Refund/);
    assert.equal((await t.call("consume", consume, "scoped-stranger")).code, status.PERMISSION_DENIED);
    assert.deepEqual(t.reached, [
      { op: "consume", key: { owner: "generation", key: "k" } },
      { op: "refund", key: { owner: "generation", key: "k" } },
    ]);
  });
});

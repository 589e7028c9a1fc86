import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { decide } from "@taituri/limiter-service/gcra";
import { compileRules } from "@taituri/limiter-service/rules";
import { startLimiterService } from "@taituri/limiter-service/service";
import { createStore } from "@taituri/limiter-service/store";
import { createLogger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { runId } from "@taituri/testing/harness";
import fc from "fast-check";
import { Redis } from "ioredis";

/** The limiter on a real Redis, called over gRPC with tokens from a real local OIDC issuer. */
const logger = createLogger({ service: "it", level: "silent" });
const run = runId();
const rulesFile = join(mkdtempSync(join(tmpdir(), "limiter-it-")), "limits.yaml");
const rulesYaml = `
limits:
  ten-a-day: { scope: shopper, limit: 10, period: 1d }
  five-a-day: { scope: shopper, limit: 5, period: 1d }
  one-a-day: { scope: shopper, limit: 1, period: 1d }
  shop-budget: { scope: shop, limit: 100, period: 1d, unit: cost }
  watch-only: { scope: shopper, limit: 1, period: 1d, shadow: true }
ruleSets:
  ten: { limits: [ten-a-day] }
  two-windows: { limits: [five-a-day, one-a-day] }
  budget: { limits: [five-a-day, shop-budget], maxCost: 50 }
  shadowed: { limits: [five-a-day, watch-only] }
  open: { limits: [five-a-day], onRedisError: allow }
`;
let infra: Infra;
let issuer: LocalIssuer;
let stranger: LocalIssuer;
let service: RunningService;
let client: limiter.LimiterServiceClient;
let admin: Redis;
let token: string;
/** The operator CLI's client with the admin scope: Peek and ResetUsage are admin RPCs. */
let adminToken: string;

before(async () => {
  // Only Redis is needed: the other servers are marked as provided so that none is started.
  infra = await startInfra({
    env: { ...process.env, KAFKA_BROKERS: "unused:1", MONGO_URL: "mongodb://unused:1/" },
  });
  issuer = await startLocalIssuer();
  stranger = await startLocalIssuer();
  writeFileSync(rulesFile, rulesYaml);
  service = await startLimiterService(
    loadLimiterConfig({
      REDIS_URL: infra.redis.url,
      LIMITER_PORT: "0",
      LIMITER_GRPC_PORT: "0",
      LIMITER_RULES_FILE: rulesFile,
      LIMITER_RULES_POLL_MS: "50",
      LIMITER_KEY_PREFIX: `it-${run}`,
      OIDC_ISSUER_URL: issuer.url,
    }),
    logger,
  );
  client = new limiter.LimiterServiceClient(service.endpoints.grpc ?? "", credentials.createInsecure());
  admin = new Redis(infra.redis.url);
  token = await issuer.sign({ sub: "generation", aud: "limiter" });
  adminToken = await issuer.sign({ sub: "limiter-admin", aud: "limiter", extra: { scope: "limiter.admin" } });
});

after(async () => {
  client?.close();
  admin?.disconnect();
  await service?.stop();
  await issuer?.close();
  await stranger?.close();
  await infra?.stop();
});

const auth = (value = token) => {
  const metadata = new Metadata();
  if (value) metadata.set("authorization", `Bearer ${value}`);
  return metadata;
};
const call =
  <Req, Res>(method: (r: Req, m: Metadata, cb: (e: ServiceError | null, v: Res) => void) => unknown) =>
  (request: Req, metadata = auth()) =>
    new Promise<Res>((resolve, reject) =>
      method(request, metadata, (error, value) => (error ? reject(error) : resolve(value))),
    );
const rpc = {
  consume: call<limiter.ConsumeRequest, limiter.ConsumeResponse>((r, m, cb) => client.consume(r, m, cb)),
  refund: call<limiter.RefundRequest, limiter.RefundResponse>((r, m, cb) => client.refund(r, m, cb)),
  peek: call<limiter.PeekRequest, limiter.PeekResponse>((r, m, cb) => client.peek(r, m, cb)),
  resetUsage: call<limiter.ResetUsageRequest, limiter.ResetUsageResponse>((r, m, cb) =>
    client.resetUsage(r, m, cb),
  ),
};
const consume = (request: Partial<limiter.ConsumeRequest>, metadata?: Metadata) =>
  rpc.consume(limiter.ConsumeRequest.fromPartial({ cost: 1, ...request }), metadata);
const refund = (idempotencyKey: string) => rpc.refund({ idempotencyKey });
const peek = (request: Partial<limiter.PeekRequest>) =>
  rpc.peek(limiter.PeekRequest.fromPartial(request), auth(adminToken));
const shopper = () => ({ shopId: `shop-${randomUUID()}`, shopperId: `s-${randomUUID()}` });
const code = (expected: status) => (error: unknown) => (error as ServiceError).code === expected;

describe("limiter: decisions on real Redis", () => {
  test("1,000 concurrent Consume calls against a limit of 10 admit exactly 10", async () => {
    const subject = shopper();
    const answers = await Promise.all(
      Array.from({ length: 1000 }, () => consume({ subject, ruleSet: "ten", idempotencyKey: randomUUID() })),
    );
    assert.equal(answers.filter((answer) => answer.allowed).length, 10);
    const denied = answers.find((answer) => !answer.allowed);
    assert.ok(denied && denied.retryAfterMs > 0 && denied.limits[0]?.remaining === 0);
  });

  test("a call that fails one window consumes none of the others", async () => {
    const subject = shopper();
    assert.equal((await consume({ subject, ruleSet: "two-windows" })).allowed, true);
    const second = await consume({ subject, ruleSet: "two-windows" });
    assert.equal(second.allowed, false);
    assert.deepEqual(
      second.limits.map((limit) => [limit.limit, limit.allowed]),
      [
        ["five-a-day", true],
        ["one-a-day", false],
      ],
    );
    const usage = await peek({ subject, ruleSet: "two-windows" });
    // five-a-day still has 4: the denied call took nothing from it.
    assert.equal(usage.limits[0]?.remaining, 4);
  });

  test("cost budgets count the cost, call limits count the call; a bad cost is INVALID_ARGUMENT", async () => {
    const subject = shopper();
    const first = await consume({ subject, ruleSet: "budget", cost: 40 });
    assert.deepEqual(
      first.limits.map((limit) => limit.remaining),
      [4, 60],
    );
    await assert.rejects(consume({ subject, ruleSet: "budget", cost: 51 }), code(status.INVALID_ARGUMENT));
    await assert.rejects(consume({ subject, ruleSet: "nope" }), code(status.INVALID_ARGUMENT));
    await assert.rejects(
      consume({ subject: { shopId: "s", shopperId: "" }, ruleSet: "budget" }),
      code(status.INVALID_ARGUMENT),
    );
  });

  test("a shadow limit reports what it would deny but never denies", async () => {
    const subject = shopper();
    await consume({ subject, ruleSet: "shadowed" });
    const second = await consume({ subject, ruleSet: "shadowed" });
    assert.equal(second.allowed, true);
    assert.deepEqual(second.limits[1], {
      limit: "watch-only",
      allowed: false,
      shadow: true,
      remaining: 0,
      resetAfterMs: second.limits[1]?.resetAfterMs,
      retryAfterMs: second.limits[1]?.retryAfterMs,
    });
    const metrics = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
    assert.match(
      metrics,
      /limiter_decisions_total\{rule_set="shadowed",limit="watch-only",outcome="shadow_denied"/,
    );
    assert.match(metrics, /limiter_usage_ratio_bucket\{le="0.2",[^}]*limit="five-a-day"\} [1-9]/);
  });

  test("a replayed idempotency key counts once and returns the same answer", async () => {
    const subject = shopper();
    const key = randomUUID();
    const first = await consume({ subject, ruleSet: "two-windows", idempotencyKey: key });
    const again = await consume({ subject, ruleSet: "two-windows", idempotencyKey: key });
    assert.equal(first.replayed, false);
    assert.deepEqual({ ...again, replayed: false }, first);
    assert.equal(again.replayed, true);
    assert.equal((await peek({ subject, ruleSet: "two-windows" })).limits[0]?.remaining, 4);
    await assert.rejects(
      consume({ subject, ruleSet: "two-windows", cost: 2, idempotencyKey: key }),
      code(status.INVALID_ARGUMENT),
    );
  });

  test("a refund gives the cost back once", async () => {
    const subject = shopper();
    const key = randomUUID();
    await consume({ subject, ruleSet: "budget", cost: 30, idempotencyKey: key });
    assert.deepEqual(
      (await peek({ subject, ruleSet: "budget" })).limits.map((limit) => limit.remaining),
      [4, 70],
    );
    assert.deepEqual(await refund(key), {
      refunded: true,
      status: limiter.RefundStatus.REFUND_STATUS_REFUNDED,
    });
    assert.deepEqual(
      (await peek({ subject, ruleSet: "budget" })).limits.map((limit) => limit.remaining),
      [5, 100],
    );
    assert.deepEqual(await refund(key), {
      refunded: false,
      status: limiter.RefundStatus.REFUND_STATUS_ALREADY_REFUNDED,
    });
    assert.equal((await peek({ subject, ruleSet: "budget" })).limits[0]?.remaining, 5);
    assert.equal((await refund(randomUUID())).status, limiter.RefundStatus.REFUND_STATUS_NOT_FOUND);
    const other = shopper();
    await consume({ subject: other, ruleSet: "two-windows" });
    const deniedKey = randomUUID();
    await consume({ subject: other, ruleSet: "two-windows", idempotencyKey: deniedKey });
    assert.equal((await refund(deniedKey)).status, limiter.RefundStatus.REFUND_STATUS_NOT_CONSUMED);
  });

  test("ResetUsage forgets a subject's usage (an admin token; limiter-admin.test.ts has the refusals)", async () => {
    const subject = shopper();
    await consume({ subject, ruleSet: "two-windows" });
    assert.equal((await consume({ subject, ruleSet: "two-windows" })).allowed, false);
    assert.equal((await rpc.resetUsage({ subject, ruleSet: "two-windows" }, auth(adminToken))).deleted, 2);
    assert.equal((await consume({ subject, ruleSet: "two-windows" })).allowed, true);
  });
});

describe("limiter: the algorithm", () => {
  const rules = compileRules({
    limits: {
      minute: { scope: "shopper", limit: 10, period: "60s" },
      hour: { scope: "shopper", limit: 30, period: "1h" },
      budget: { scope: "shop", limit: 50, period: "10m", unit: "cost" },
      global: { scope: "global", limit: 7, period: "7s", shadow: true },
    },
    ruleSets: {
      minute: { limits: ["minute"] },
      mixed: { limits: ["minute", "hour", "budget", "global"] },
    },
  });

  const ruleSetOf = (name: string) => {
    const ruleSet = rules.ruleSets.get(name);
    if (!ruleSet) throw new Error(`no rule set ${name}`);
    return ruleSet;
  };

  test("no burst at a window boundary: at most limit + elapsed / interval in any span", async () => {
    let now = 1_000_000_000_000;
    const store = createStore({ redis: admin, prefix: `it-${run}-boundary`, now: () => now });
    const ruleSet = ruleSetOf("minute");
    const subject = shopper();
    const admitted: number[] = [];
    // A fixed one-minute window would admit 10 just before its end and 10 more just after it.
    for (const at of [59_000, 59_999, 60_000, 60_001, 61_000, 66_000, 72_000]) {
      now = 1_000_000_000_000 + at;
      for (let i = 0; i < 12; i++)
        if ((await store.consume(ruleSet, subject, 1, undefined, 0)).allowed) admitted.push(at);
    }
    assert.equal(admitted.filter((at) => at <= 61_000).length, 10);
    // One refill every 6 s: 59.0 s + 6 s and + 12 s.
    assert.deepEqual(
      admitted.filter((at) => at > 61_000),
      [66_000, 72_000],
    );
  });

  test("property: the Redis script decides exactly as the reference model (fast-check)", async () => {
    const ruleSet = ruleSetOf("mixed");
    const step = fc.record({
      advanceMs: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 2_000 }),
        fc.integer({ min: 0, max: 700_000 }),
      ),
      who: fc.integer({ min: 0, max: 2 }),
      cost: fc.integer({ min: 1, max: 30 }),
    });
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
        let now = 1_700_000_000_000;
        const store = createStore({ redis: admin, prefix: `it-${run}-model-${runs++}`, now: () => now });
        const model = new Map<string, number>();
        const keysOf = (who: number) => [`m${who}`, `h${who}`, "budget", "global"];
        for (const { advanceMs, who, cost } of steps) {
          now += advanceMs;
          const subject = { shopId: "shop", shopperId: `p${who}` };
          const actual = await store.consume(ruleSet, subject, cost, undefined, 0);
          const keys = keysOf(who);
          const buckets = ruleSet.limits.map((limit) => ({
            periodMs: limit.periodMs,
            limit: limit.limit,
            shadow: limit.shadow,
            cost: limit.unit === "cost" ? cost : 1,
          }));
          const expected = decide(
            buckets,
            keys.map((key) => model.get(key)),
            now,
          );
          if (expected.allowed)
            expected.limits.forEach((limit, index) => {
              const key = keys[index];
              if (limit.allowed && key) model.set(key, limit.newTat);
            });
          assert.equal(actual.allowed, expected.allowed);
          assert.equal(actual.retryAfterMs, expected.retryAfterMs);
          assert.deepEqual(
            actual.limits.map(({ allowed, remaining, resetAfterMs, retryAfterMs }) => ({
              allowed,
              remaining,
              resetAfterMs,
              retryAfterMs,
            })),
            expected.limits.map(({ allowed, remaining, resetAfterMs, retryAfterMs }) => ({
              allowed,
              remaining,
              resetAfterMs,
              retryAfterMs,
            })),
          );
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("limiter: authentication", () => {
  const request = { subject: { shopId: "a", shopperId: "b" }, ruleSet: "ten" };
  const unauthenticated = code(status.UNAUTHENTICATED);

  test("no token, expired, wrong audience, wrong issuer, bad signature, unknown key: UNAUTHENTICATED", async () => {
    const valid = await issuer.sign({ sub: "generation", aud: "limiter" });
    const [head, body, signature = ""] = valid.split(".");
    const tampered = `${head}.${body}.${signature.slice(0, 5)}${signature[5] === "A" ? "B" : "A"}${signature.slice(6)}`;
    const bad = {
      none: new Metadata(),
      expired: auth(await issuer.sign({ sub: "g", aud: "limiter", expiresInSeconds: -60 })),
      audience: auth(await issuer.sign({ sub: "g", aud: "payment" })),
      issuer: auth(await issuer.sign({ sub: "g", aud: "limiter", iss: "http://127.0.0.1:1" })),
      signature: auth(tampered),
      keyId: auth(await stranger.sign({ sub: "g", aud: "limiter", iss: issuer.url })),
    };
    for (const [name, metadata] of Object.entries(bad)) {
      await assert.rejects(consume(request, metadata), unauthenticated, name);
      await assert.rejects(rpc.refund({ idempotencyKey: "k" }, metadata), unauthenticated, name);
      await assert.rejects(
        rpc.peek(limiter.PeekRequest.fromPartial(request), metadata),
        unauthenticated,
        name,
      );
      await assert.rejects(
        rpc.resetUsage(limiter.ResetUsageRequest.fromPartial(request), metadata),
        unauthenticated,
        name,
      );
    }
    assert.ok((await consume(request, auth(valid))).limits.length === 1);
  });

  test("the gRPC health service answers SERVING without a token", async () => {
    const response = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (message: Buffer) => message,
        (bytes: Buffer) => bytes,
        Buffer.alloc(0),
        (error, value) => (error || !value ? reject(error) : resolve(value)),
      ),
    );
    assert.deepEqual([...response], [0x08, 0x01]);
  });
});

describe("limiter: authorization per caller", () => {
  const request = { subject: { shopId: "a", shopperId: "b" }, ruleSet: "ten" };
  const forbidden = code(status.PERMISSION_DENIED);

  test("a caller outside LIMITER_CALLERS gets PERMISSION_DENIED on every RPC, even with the admin scope", async () => {
    const payment = auth(
      await issuer.sign({ sub: "payment", aud: "limiter", extra: { scope: "limiter.admin" } }),
    );
    await assert.rejects(consume(request, payment), forbidden);
    await assert.rejects(rpc.refund({ idempotencyKey: "k" }, payment), forbidden);
    await assert.rejects(rpc.peek(limiter.PeekRequest.fromPartial(request), payment), forbidden);
    await assert.rejects(rpc.resetUsage(limiter.ResetUsageRequest.fromPartial(request), payment), forbidden);
    // A listed caller without the admin scope: Consume yes, Peek no.
    await assert.rejects(rpc.peek(limiter.PeekRequest.fromPartial(request)), forbidden);
    const metrics = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
    assert.match(metrics, /limiter_calls_total\{rpc="peek",rule_set="ten",outcome="forbidden"[^}]*\} 2/);
  });

  test("a Refund reaches only the caller's own consumes; the same key of two callers is two keys", async () => {
    const subject = shopper();
    const key = randomUUID();
    const operator = auth(adminToken);
    await consume({ subject, ruleSet: "budget", cost: 30, idempotencyKey: key }, operator);
    const theirs = await rpc.refund({ idempotencyKey: key });
    assert.equal(theirs.status, limiter.RefundStatus.REFUND_STATUS_NOT_FOUND, "generation cannot refund it");
    assert.equal((await peek({ subject, ruleSet: "budget" })).limits[1]?.remaining, 70);
    // generation's own consume under the same key is its own: no conflict, counted again.
    const own = await consume({ subject, ruleSet: "budget", cost: 10, idempotencyKey: key });
    assert.deepEqual([own.allowed, own.replayed], [true, false]);
    assert.equal((await peek({ subject, ruleSet: "budget" })).limits[1]?.remaining, 60);
    assert.equal(
      (await rpc.refund({ idempotencyKey: key }, operator)).status,
      limiter.RefundStatus.REFUND_STATUS_REFUNDED,
    );
    assert.equal(
      (await rpc.refund({ idempotencyKey: key })).status,
      limiter.RefundStatus.REFUND_STATUS_REFUNDED,
    );
    assert.equal((await peek({ subject, ruleSet: "budget" })).limits[1]?.remaining, 100);
  });
});

describe("limiter: Redis outage and rules reload", () => {
  test("a hung Redis fails closed with UNAVAILABLE by default, open where the rule set says so", async () => {
    const subject = shopper();
    await admin.call("CLIENT", "PAUSE", "1500", "ALL");
    try {
      await assert.rejects(consume({ subject, ruleSet: "ten" }), (error: ServiceError) => {
        assert.equal(error.code, status.UNAVAILABLE);
        assert.match(error.details, /redis unavailable/);
        return true;
      });
      const open = await consume({ subject, ruleSet: "open" });
      assert.deepEqual([open.allowed, open.degraded], [true, true]);
    } finally {
      await admin.call("CLIENT", "UNPAUSE");
    }
    const metrics = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
    assert.match(metrics, /limiter_calls_total\{rpc="consume",rule_set="ten",outcome="failed_closed"/);
    assert.match(metrics, /limiter_redis_errors_total\{service="limiter"\} [1-9]/);
  });

  test("a changed rules file is applied without restart; a bad one keeps the old rules", async () => {
    const waitFor = async (check: () => Promise<boolean>) => {
      for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(await check());
    };
    writeFileSync(rulesFile, `${rulesYaml}  added: { limits: [one-a-day] }\n`);
    await waitFor(() =>
      consume({ subject: shopper(), ruleSet: "added" }).then(
        (answer) => answer.allowed,
        () => false,
      ),
    );
    writeFileSync(rulesFile, "limits: { broken: { scope: nowhere } }\nruleSets: {}\n");
    await waitFor(async () =>
      /limiter_rules_reloads_total\{result="error",service="limiter"\} [1-9]/.test(
        await (await fetch(`${service.endpoints.ops}/metrics`)).text(),
      ),
    );
    assert.equal((await consume({ subject: shopper(), ruleSet: "added" })).allowed, true);
  });
});

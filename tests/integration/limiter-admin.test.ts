import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { startLimiterService } from "@taituri/limiter-service/service";
import { createLogger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import type { RunningService } from "@taituri/service";

/**
 * Peek and ResetUsage are admin-only, and the operator CLI (services/limiter/src/cli.ts) run as a
 * real process against the limiter on real Redis with client-credentials tokens from a real local
 * issuer.
 */
const logger = createLogger({ service: "it", level: "silent" });
const cli = fileURLToPath(new URL("../../services/limiter/src/cli.ts", import.meta.url));
const adminSubject = "system:serviceaccount:ops:limiter-resetter";
const clients = {
  "limiter-admin": { secret: "admin-secret", scopes: ["limiter.admin"] },
  generation: "generation-secret",
};
let infra: Infra;
let issuer: LocalIssuer;
let service: RunningService;
let client: limiter.LimiterServiceClient;

before(async () => {
  infra = await startInfra({
    env: { ...process.env, KAFKA_BROKERS: "unused:1", MONGO_URL: "mongodb://unused:1/" },
  });
  issuer = await startLocalIssuer({ clients });
  const rulesFile = join(mkdtempSync(join(tmpdir(), "limiter-admin-")), "limits.yaml");
  writeFileSync(
    rulesFile,
    `
limits:
  burst: { scope: shopper, limit: 3, period: 10m }
  one-a-day: { scope: shopper, limit: 1, period: 1d }
  shop-cost: { scope: shop, limit: 100, period: 1d, unit: cost }
  everyone: { scope: global, limit: 100000, period: 1d, shadow: true }
ruleSets:
  generation-round: { limits: [burst, shop-cost, everyone], maxCost: 50 }
  two: { limits: [burst, one-a-day] }
`,
  );
  service = await startLimiterService(
    loadLimiterConfig({
      REDIS_URL: infra.redis.url,
      LIMITER_PORT: "0",
      LIMITER_GRPC_PORT: "0",
      LIMITER_RULES_FILE: rulesFile,
      LIMITER_KEY_PREFIX: `ita-${randomUUID().slice(0, 8)}`,
      OIDC_ISSUER_URL: issuer.url,
      LIMITER_ADMIN_SUBJECTS: `someone-else,${adminSubject}`,
    }),
    logger,
  );
  client = new limiter.LimiterServiceClient(service.endpoints.grpc ?? "", credentials.createInsecure());
});

after(async () => {
  client?.close();
  await service?.stop();
  await issuer?.close();
  await infra?.stop();
});

const bearer = async (sub: string, scope?: string) => {
  const metadata = new Metadata();
  const token = await issuer.sign({ sub, aud: "limiter", extra: scope ? { scope } : undefined });
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
};
const unary =
  <Req, Res>(method: (r: Req, m: Metadata, cb: (e: ServiceError | null, v: Res) => void) => unknown) =>
  async (request: Req, metadata: Metadata) =>
    new Promise<Res>((resolve, reject) =>
      method(request, metadata, (error, value) => (error ? reject(error) : resolve(value))),
    );
const consume = unary<limiter.ConsumeRequest, limiter.ConsumeResponse>((r, m, cb) =>
  client.consume(r, m, cb),
);
const peek = unary<limiter.PeekRequest, limiter.PeekResponse>((r, m, cb) => client.peek(r, m, cb));
const resetUsage = unary<limiter.ResetUsageRequest, limiter.ResetUsageResponse>((r, m, cb) =>
  client.resetUsage(r, m, cb),
);
const shopper = () => ({ shopId: `shop-${randomUUID()}`, shopperId: `s-${randomUUID()}` });
/** The operator CLI's client with the admin scope. */
const operator = () => bearer("limiter-admin", "limiter.admin");
/** Uses the "two" rule set until one-a-day denies; returns the remaining counts then. */
const useUp = async (subject: { shopId: string; shopperId: string }) => {
  const generation = await bearer("generation");
  await consume(limiter.ConsumeRequest.fromPartial({ subject, ruleSet: "two", cost: 1 }), generation);
  const denied = await consume(
    limiter.ConsumeRequest.fromPartial({ subject, ruleSet: "two", cost: 1 }),
    generation,
  );
  assert.equal(denied.allowed, false);
  return (await peek({ subject, ruleSet: "two" }, await operator())).limits.map((limit) => limit.remaining);
};

describe("limiter: Peek and ResetUsage need an admin", () => {
  test("a listed caller with the admin scope resets; so does a listed admin subject without a scope", async () => {
    for (const metadata of [
      await bearer("limiter-admin", "limiter.read limiter.admin"),
      await bearer(adminSubject),
    ]) {
      const subject = shopper();
      assert.deepEqual(await useUp(subject), [2, 0]);
      assert.equal((await peek({ subject, ruleSet: "two" }, metadata)).limits.length, 2);
      assert.equal((await resetUsage({ subject, ruleSet: "two" }, metadata)).deleted, 2);
      const after = await peek({ subject, ruleSet: "two" }, await operator());
      assert.deepEqual(
        after.limits.map((limit) => limit.remaining),
        [3, 1],
      );
    }
  });

  test("a valid token without admin rights gets PERMISSION_DENIED and nothing is read or reset", async () => {
    const subject = shopper();
    assert.deepEqual(await useUp(subject), [2, 0]);
    for (const metadata of [
      await bearer("generation"),
      await bearer("generation", "limiter.read limiter.administrator"),
    ]) {
      await assert.rejects(resetUsage({ subject, ruleSet: "two" }, metadata), (error: ServiceError) => {
        assert.equal(error.code, status.PERMISSION_DENIED);
        assert.match(error.details, /ResetUsage needs the "limiter\.admin" scope/);
        return true;
      });
      await assert.rejects(peek({ subject, ruleSet: "two" }, metadata), (error: ServiceError) => {
        assert.equal(error.code, status.PERMISSION_DENIED);
        assert.match(error.details, /Peek needs the "limiter\.admin" scope/);
        return true;
      });
    }
    // The admin scope is not enough for a caller the limiter does not know.
    await assert.rejects(
      resetUsage({ subject, ruleSet: "two" }, await bearer("ops", "limiter.admin")),
      (error: ServiceError) =>
        error.code === status.PERMISSION_DENIED && /not in LIMITER_CALLERS/.test(error.details),
    );
    // Refused before the rule set is looked at: an unknown one is still PERMISSION_DENIED.
    await assert.rejects(
      resetUsage({ subject, ruleSet: "no-such-set" }, await bearer("generation")),
      (error: ServiceError) => error.code === status.PERMISSION_DENIED,
    );
    const usage = await peek({ subject, ruleSet: "two" }, await operator());
    assert.deepEqual(
      usage.limits.map((limit) => limit.remaining),
      [2, 0],
    );
    const metrics = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
    assert.match(
      metrics,
      /limiter_calls_total\{rpc="reset_usage",rule_set="two",outcome="forbidden"[^}]*\} 3/,
    );
  });
});

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as `npm run limiter` does, with only the given settings in its environment. */
const runCli = (args: string[], env: Record<string, string> = {}): Promise<CliRun> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      {
        env: {
          PATH: process.env.PATH ?? "",
          LIMITER_URL: service.endpoints.grpc ?? "",
          OIDC_ISSUER_URL: issuer.url,
          OIDC_CLIENT_ID: "limiter-admin",
          OIDC_CLIENT_SECRET: "admin-secret",
          ...env,
        },
        timeout: 30_000,
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });

describe("limiter CLI", () => {
  test("peek prints a table, or JSON with --json, for the admin client; another client exits 4", async () => {
    const subject = shopper();
    const generation = await bearer("generation");
    await consume(
      limiter.ConsumeRequest.fromPartial({ subject, ruleSet: "generation-round", cost: 30 }),
      generation,
    );
    const asGeneration = { OIDC_CLIENT_ID: "generation", OIDC_CLIENT_SECRET: "generation-secret" };
    const args = ["peek", "--shop", subject.shopId, "--shopper", subject.shopperId];
    const refused = await runCli(args, asGeneration);
    assert.equal(refused.code, 4);
    assert.match(refused.stderr, /PERMISSION_DENIED: Peek needs the "limiter.admin" scope/);
    const table = await runCli([...args, "--rule-set", "generation-round"]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split("\n");
    assert.match(
      lines[0] ?? "",
      new RegExp(`generation-round, shop ${subject.shopId}, shopper ${subject.shopperId}: next call allowed`),
    );
    assert.match(lines[1] ?? "", /^LIMIT\s+REMAINING\s+FULL AGAIN IN\s+NEXT CALL\s+SHADOW$/);
    assert.match(lines[2] ?? "", /^burst\s+2\s+3m( \d{1,2}s)?\s+allowed\s+no$/);
    assert.match(lines[3] ?? "", /^shop-cost\s+70\s+7h 1[12]m( \d+s)?\s+allowed\s+no$/);
    assert.match(lines[4] ?? "", /^everyone\s+\d+\s+\S.*\s+allowed\s+yes$/);

    // --rule-set defaults to generation-round.
    const json = await runCli([...args, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.ruleSet, "generation-round");
    assert.deepEqual(parsed.subject, subject);
    assert.equal(parsed.allowed, true);
    assert.deepEqual(
      parsed.limits
        .map((limit: { limit: string; remaining: number }) => [limit.limit, limit.remaining])
        .slice(0, 2),
      [
        ["burst", 2],
        ["shop-cost", 70],
      ],
    );
  });

  test("reset by an admin client clears the subject's buckets; by another client exits 4 and clears nothing", async () => {
    const subject = shopper();
    assert.deepEqual(await useUp(subject), [2, 0]);
    const args = ["--shop", subject.shopId, "--shopper", subject.shopperId, "--rule-set", "two"];

    const refused = await runCli(["reset", ...args], {
      OIDC_CLIENT_ID: "generation",
      OIDC_CLIENT_SECRET: "generation-secret",
    });
    assert.equal(refused.code, 4);
    assert.match(refused.stderr, /PERMISSION_DENIED: ResetUsage needs the "limiter.admin" scope/);
    assert.equal(refused.stdout, "");
    const still = JSON.parse((await runCli(["peek", ...args, "--json"])).stdout);
    assert.deepEqual(
      still.limits.map((limit: { remaining: number }) => limit.remaining),
      [2, 0],
    );

    const reset = await runCli(["reset", ...args]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /reset rule set two, shop .*: 2 bucket\(s\) deleted/);
    const cleared = JSON.parse((await runCli(["peek", ...args, "--json"])).stdout);
    assert.deepEqual(
      cleared.limits.map((limit: { remaining: number }) => limit.remaining),
      [3, 1],
    );
    const again = await runCli(["reset", ...args, "--json"]);
    assert.deepEqual(JSON.parse(again.stdout), { ruleSet: "two", subject, deleted: 0 });
  });

  test("clear errors and exit codes: bad secret 3, wrong audience 3, unreachable 5, bad usage 2", async () => {
    const args = ["peek", "--shop", "s", "--shopper", "p"];
    const badSecret = await runCli(args, { OIDC_CLIENT_SECRET: "wrong" });
    assert.equal(badSecret.code, 3);
    assert.match(
      badSecret.stderr,
      /UNAUTHENTICATED: the issuer refused client "limiter-admin" \(token endpoint answered 401\)/,
    );

    // The issuer grants the token, the limiter refuses it: another audience.
    const audience = await runCli([...args, "--audience", "payment"]);
    assert.equal(audience.code, 3);
    assert.match(audience.stderr, /UNAUTHENTICATED: .*aud/);

    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const down = await runCli([...args, "--url", `127.0.0.1:${closedPort}`]);
    assert.equal(down.code, 5);
    assert.match(down.stderr, /UNAVAILABLE: .*limiter at 127\.0\.0\.1:\d+/);
    const issuerDown = await runCli(args, { OIDC_ISSUER_URL: `http://127.0.0.1:${closedPort}` });
    assert.equal(issuerDown.code, 5);
    assert.match(issuerDown.stderr, /OIDC issuer unreachable/);

    assert.equal((await runCli(["peek", "--shopper", "p"])).code, 2);
    assert.equal((await runCli(["explode", "--shop", "s"])).code, 2);
    const unknown = await runCli([...args, "--rule-set", "nope"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /INVALID_ARGUMENT: unknown rule set "nope"/);
  });
});

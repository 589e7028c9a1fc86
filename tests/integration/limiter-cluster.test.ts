import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { type RedisCluster, startRedisCluster } from "@taituri/devenv";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { compileRules } from "@taituri/limiter-service/rules";
import { startLimiterService } from "@taituri/limiter-service/service";
import { keysFor } from "@taituri/limiter-service/store";
import { createLogger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { Cluster } from "ioredis";

/** The limiter on a real 3-master Redis Cluster of local redis-server processes. */
const logger = createLogger({ service: "it", level: "silent" });
const prefix = `itc-${randomUUID().slice(0, 8)}`;
const rulesDocument = {
  limits: {
    "ten-a-day": { scope: "shopper", limit: 10, period: "1d" },
    "five-a-day": { scope: "shopper", limit: 5, period: "1d" },
    "shop-budget": { scope: "shop", limit: 100, period: "1d", unit: "cost" },
    everyone: { scope: "global", limit: 100000, period: "1d" },
  },
  ruleSets: {
    ten: { limits: ["ten-a-day"] },
    round: { limits: ["five-a-day", "shop-budget", "everyone"], maxCost: 50 },
  },
};
let cluster: RedisCluster;
let issuer: LocalIssuer;
let service: RunningService;
let client: limiter.LimiterServiceClient;
let redis: Cluster;
let metadata: Metadata;
/** Peek is an admin RPC: the operator CLI's client with the admin scope. */
let adminMetadata: Metadata;

before(async () => {
  cluster = await startRedisCluster();
  issuer = await startLocalIssuer();
  const rulesFile = join(mkdtempSync(join(tmpdir(), "limiter-cluster-")), "limits.yaml");
  // JSON is YAML.
  writeFileSync(rulesFile, JSON.stringify(rulesDocument));
  service = await startLimiterService(
    loadLimiterConfig({
      // Nothing answers here: every call must go to the cluster.
      REDIS_URL: "redis://127.0.0.1:1",
      LIMITER_REDIS_CLUSTER_NODES: cluster.nodes.join(","),
      LIMITER_PORT: "0",
      LIMITER_GRPC_PORT: "0",
      LIMITER_RULES_FILE: rulesFile,
      LIMITER_KEY_PREFIX: prefix,
      OIDC_ISSUER_URL: issuer.url,
    }),
    logger,
  );
  client = new limiter.LimiterServiceClient(service.endpoints.grpc ?? "", credentials.createInsecure());
  redis = new Cluster(
    cluster.nodes.map((node) => ({ host: node.split(":")[0], port: Number(node.split(":")[1]) })),
  );
  metadata = new Metadata();
  metadata.set("authorization", `Bearer ${await issuer.sign({ sub: "generation", aud: "limiter" })}`);
  adminMetadata = new Metadata();
  const admin = await issuer.sign({
    sub: "limiter-admin",
    aud: "limiter",
    extra: { scope: "limiter.admin" },
  });
  adminMetadata.set("authorization", `Bearer ${admin}`);
});

after(async () => {
  client?.close();
  redis?.disconnect();
  await service?.stop();
  await issuer?.close();
  await cluster?.stop();
});

const unary =
  <Req, Res>(method: (r: Req, m: Metadata, cb: (e: ServiceError | null, v: Res) => void) => unknown) =>
  (request: Req, as = metadata) =>
    new Promise<Res>((resolve, reject) =>
      method(request, as, (error, value) => (error ? reject(error) : resolve(value))),
    );
const consume = (request: Partial<limiter.ConsumeRequest>) =>
  unary<limiter.ConsumeRequest, limiter.ConsumeResponse>((r, m, cb) => client.consume(r, m, cb))(
    limiter.ConsumeRequest.fromPartial({ cost: 1, ...request }),
  );
const refund = unary<limiter.RefundRequest, limiter.RefundResponse>((r, m, cb) => client.refund(r, m, cb));
const peek = (request: Partial<limiter.PeekRequest>) =>
  unary<limiter.PeekRequest, limiter.PeekResponse>((r, m, cb) => client.peek(r, m, cb))(
    limiter.PeekRequest.fromPartial(request),
    adminMetadata,
  );
const shopper = () => ({ shopId: `shop-${randomUUID()}`, shopperId: `s-${randomUUID()}` });
const remaining = (response: { limits: limiter.LimitState[] }) =>
  response.limits.map((limit) => limit.remaining);

describe("limiter on a Redis Cluster", () => {
  test("the cluster is real: 3 masters, every slot served, and the limiter's keys share one slot", async () => {
    const nodes = String(await redis.call("CLUSTER", "NODES"))
      .trim()
      .split("\n");
    assert.equal(nodes.filter((line) => / master /.test(line) || /,master /.test(line)).length, 3);
    assert.match(
      String(await redis.call("CLUSTER", "INFO")),
      /cluster_state:ok[\s\S]*cluster_slots_ok:16384/,
    );

    const subject = shopper();
    const key = randomUUID();
    await consume({ subject, ruleSet: "round", cost: 7, idempotencyKey: key });
    const round = compileRules(rulesDocument).ruleSets.get("round");
    assert.ok(round);
    const keys = keysFor(prefix);
    const names = [
      ...round.limits.map((limit) => keys.bucket(limit, subject)),
      keys.idempotency({ owner: "generation", key }),
    ];
    const slots = await Promise.all(names.map((name) => redis.call("CLUSTER", "KEYSLOT", name)));
    assert.equal(new Set(slots).size, 1, `slots ${slots.join(",")}`);
    // The keys exist on the cluster (the limiter wrote them there, not to REDIS_URL).
    assert.equal(await redis.exists(...names), names.length);
    // Keys without the hash tag would spread: the test's names are not all in one slot by chance.
    const untagged = await Promise.all(
      names.map((name) => redis.call("CLUSTER", "KEYSLOT", name.replace(`{${prefix}}`, prefix))),
    );
    assert.ok(new Set(untagged).size > 1);
  });

  test("200 concurrent Consume calls against a limit of 10 admit exactly 10", async () => {
    const subject = shopper();
    const answers = await Promise.all(
      Array.from({ length: 200 }, () => consume({ subject, ruleSet: "ten", idempotencyKey: randomUUID() })),
    );
    assert.equal(answers.filter((answer) => answer.allowed).length, 10);
    assert.deepEqual(remaining(await peek({ subject, ruleSet: "ten" })), [0]);
  });

  test("a multi-window call (shopper, shop and global) takes from every window, or from none", async () => {
    const subject = shopper();
    const before = await peek({ subject, ruleSet: "round" });
    const first = await consume({ subject, ruleSet: "round", cost: 40 });
    assert.equal(first.allowed, true);
    assert.deepEqual(remaining(first).slice(0, 2), [4, 60]);
    assert.ok((first.limits[2]?.remaining ?? 0) < (before.limits[2]?.remaining ?? 0));
    await consume({ subject, ruleSet: "round", cost: 50 });
    // 10 left in the shop budget: a cost of 20 fails that window and takes nothing from the others.
    const denied = await consume({ subject, ruleSet: "round", cost: 20 });
    assert.equal(denied.allowed, false);
    assert.deepEqual(
      denied.limits.map((limit) => limit.allowed),
      [true, false, true],
    );
    assert.deepEqual(remaining(await peek({ subject, ruleSet: "round" })).slice(0, 2), [3, 10]);
  });

  test("a replayed idempotency key counts once; a refund gives the cost back once", async () => {
    const subject = shopper();
    const key = randomUUID();
    const first = await consume({ subject, ruleSet: "round", cost: 30, idempotencyKey: key });
    const again = await consume({ subject, ruleSet: "round", cost: 30, idempotencyKey: key });
    assert.deepEqual([first.replayed, again.replayed], [false, true]);
    assert.deepEqual(remaining(again), remaining(first));
    assert.deepEqual(remaining(await peek({ subject, ruleSet: "round" })).slice(0, 2), [4, 70]);
    assert.equal((await refund({ idempotencyKey: key })).status, limiter.RefundStatus.REFUND_STATUS_REFUNDED);
    assert.deepEqual(remaining(await peek({ subject, ruleSet: "round" })).slice(0, 2), [5, 100]);
    assert.equal(
      (await refund({ idempotencyKey: key })).status,
      limiter.RefundStatus.REFUND_STATUS_ALREADY_REFUNDED,
    );
    assert.deepEqual(remaining(await peek({ subject, ruleSet: "round" })).slice(0, 2), [5, 100]);
  });
});

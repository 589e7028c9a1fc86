import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import { eventually } from "@taituri/testing/harness";

/**
 * The limiter as deployed with LIMITER_WORKERS=2: one primary process serving the ops port, two
 * workers sharing the gRPC port. Decisions stay exact across workers (they share Redis), /metrics
 * sums both workers, and SIGTERM stops the lot.
 */
const root = new URL("../../", import.meta.url).pathname;
let infra: Infra;
let issuer: LocalIssuer;
let child: ChildProcess;
let ops: string;
let client: limiter.LimiterServiceClient;

before(async () => {
  infra = await startInfra({
    env: { ...process.env, KAFKA_BROKERS: "unused:1", MONGO_URL: "mongodb://unused:1/" },
  });
  issuer = await startLocalIssuer();
  const rulesFile = join(mkdtempSync(join(tmpdir(), "limiter-workers-")), "limits.yaml");
  writeFileSync(
    rulesFile,
    "limits:\n  ten: { scope: shopper, limit: 10, period: 1d }\nruleSets:\n  ten: { limits: [ten] }\n",
  );
  const grpcPort = await freePort();
  const opsPort = await freePort();
  child = spawn(process.execPath, [join(root, "services/limiter/src/main.ts")], {
    env: {
      ...process.env,
      LIMITER_WORKERS: "2",
      REDIS_URL: infra.redis.url,
      LIMITER_GRPC_PORT: String(grpcPort),
      LIMITER_PORT: String(opsPort),
      LIMITER_RULES_FILE: rulesFile,
      LIMITER_KEY_PREFIX: `workers-${randomUUID().slice(0, 8)}`,
      OIDC_ISSUER_URL: issuer.url,
      LOG_LEVEL: "warn",
      OTEL_SDK_DISABLED: "true",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  ops = `http://127.0.0.1:${opsPort}`;
  await eventually(
    "both workers ready",
    () =>
      fetch(`${ops}/readyz`).then(
        (r) => r.ok,
        () => false,
      ),
    30_000,
  );
  client = new limiter.LimiterServiceClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
});

after(async () => {
  client?.close();
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await issuer?.close();
  await infra?.stop();
});

test("two workers on one port: 200 concurrent calls over 8 connections admit exactly 10, metrics sum both", async () => {
  const token = await issuer.sign({ sub: "generation", aud: "limiter" });
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  // Separate channels, so the primary hands connections to both workers.
  const clients = Array.from(
    { length: 8 },
    () =>
      new limiter.LimiterServiceClient(
        client.getChannel().getTarget().replace(/^dns:/, ""),
        credentials.createInsecure(),
        {
          "grpc.use_local_subchannel_pool": 1,
        },
      ),
  );
  const subject = { shopId: "shop-w", shopperId: `s-${randomUUID()}` };
  const answers = await Promise.all(
    Array.from(
      { length: 200 },
      (_, i) =>
        new Promise<limiter.ConsumeResponse>((resolve, reject) =>
          clients[i % clients.length]?.consume(
            limiter.ConsumeRequest.fromPartial({
              subject,
              ruleSet: "ten",
              cost: 1,
              idempotencyKey: randomUUID(),
            }),
            metadata,
            (error: ServiceError | null, value: limiter.ConsumeResponse) =>
              error ? reject(error) : resolve(value),
          ),
        ),
    ),
  );
  for (const c of clients) c.close();
  assert.equal(answers.filter((a) => a.allowed).length, 10);
  const text = await (await fetch(`${ops}/metrics`)).text();
  const total = [...text.matchAll(/^limiter_calls_total\{[^}]*rpc="[Cc]onsume"[^}]*\} (\d+)/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
  assert.equal(total, 200, "the primary's /metrics counts the calls of both workers");
  const cpu = text.match(/^process_cpu_seconds_total\{[^}]*\} (\S+)/m);
  assert.ok(cpu, "process metrics aggregated too");
});

test("SIGTERM stops the primary and both workers", async () => {
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGTERM");
  assert.equal(await exited, 0);
});

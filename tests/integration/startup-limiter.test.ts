import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, test } from "node:test";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { startLimiterService } from "@taituri/limiter-service/service";
import { createLogger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { eventually, runId } from "@taituri/testing/harness";

/**
 * The limiter started with Redis away (a port nobody listens on): it serves, /readyz answers 503
 * naming redis, a Consume fails closed (UNAVAILABLE), the log has one line per attempt; once Redis
 * answers on that port (a TCP relay to the shared server) it is ready without a restart and admits.
 */
const run = runId();
const rulesFile = join(mkdtempSync(join(tmpdir(), "limiter-startup-")), "limits.yaml");

let infra: Infra;
let issuer: LocalIssuer;
let service: RunningService;
let client: limiter.LimiterServiceClient;
let token: string;
let redisPort: number;
let relay: Server | undefined;
const sockets = new Set<Socket>();
const lines: { msg?: string; [field: string]: unknown }[] = [];

before(async () => {
  // Only Redis is needed: the other servers are marked as provided so that none is started.
  infra = await startInfra({
    env: { ...process.env, KAFKA_BROKERS: "unused:1", MONGO_URL: "mongodb://unused:1/" },
  });
  issuer = await startLocalIssuer();
  writeFileSync(
    rulesFile,
    "limits:\n  ten-a-day: { scope: shopper, limit: 10, period: 1d }\nruleSets:\n  ten: { limits: [ten-a-day] }\n",
  );
  redisPort = await freePort();
  const destination = new PassThrough();
  destination.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.startsWith("{")) lines.push(JSON.parse(line));
  });
  service = await startLimiterService(
    loadLimiterConfig({
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      LIMITER_PORT: "0",
      LIMITER_GRPC_PORT: "0",
      LIMITER_RULES_FILE: rulesFile,
      LIMITER_KEY_PREFIX: `it-startup-${run}`,
      OIDC_ISSUER_URL: issuer.url,
    }),
    createLogger({ service: "limiter", level: "info", destination }),
    { waitForDependencies: false },
  );
  client = new limiter.LimiterServiceClient(service.endpoints.grpc ?? "", credentials.createInsecure());
  token = await issuer.sign({ sub: "generation", aud: "limiter" });
});

after(async () => {
  client?.close();
  await service?.stop();
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => relay?.close(resolve) ?? resolve(undefined));
  await issuer?.close();
  await infra?.stop();
});

const consume = () => {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const request = limiter.ConsumeRequest.fromPartial({
    subject: { shopId: `shop-${run}`, shopperId: `s-${randomUUID()}` },
    ruleSet: "ten",
    cost: 1,
    idempotencyKey: randomUUID(),
  });
  return new Promise<limiter.ConsumeResponse>((resolve, reject) =>
    client.consume(request, metadata, (error, value) => (error ? reject(error) : resolve(value))),
  );
};

async function readyz(): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${service.endpoints.ops}/readyz`);
  return { status: response.status, body: await response.json() };
}

const waiting = () => lines.filter((line) => line.msg?.startsWith("waiting for redis"));

describe("limiter start-up with Redis away", { timeout: 120_000 }, () => {
  test("serves, not ready naming redis, fails closed, one log line per attempt", async () => {
    await eventually("two attempts to reach Redis", () => waiting().length >= 2, 60_000);
    for (const line of waiting())
      assert.match(
        String(line.msg),
        new RegExp(
          `^waiting for redis \\(127\\.0\\.0\\.1:${redisPort}\\): connection refused; retrying in [\\d.]+ s$`,
        ),
      );
    assert.deepEqual(
      waiting().map((line) => line.attempt),
      waiting().map((_, i) => i + 1),
    );
    assert.deepEqual(await readyz(), { status: 503, body: { ready: false, failing: ["redis"] } });
    await assert.rejects(consume(), (error: ServiceError) => error.code === status.UNAVAILABLE);
  });

  test("Redis answers on that port: ready without a restart, and a Consume is admitted", async () => {
    const target = new URL(infra.redis.url);
    relay = createServer((socket) => {
      const upstream = tcpConnect(Number(target.port || 6379), target.hostname);
      sockets.add(socket).add(upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on("error", () => upstream.destroy());
      upstream.on("error", () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay?.listen(redisPort, "127.0.0.1", resolve));
    await eventually("limiter ready", async () => (await readyz()).status === 200, 60_000);
    assert.deepEqual((await readyz()).body, { ready: true, failing: [] });
    const answer = await consume();
    assert.equal(answer.allowed, true);
    assert.equal(lines.filter((line) => line.msg?.startsWith("redis (")).length, 1);
  });
});

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { freePort, type RestartableRedis, startRestartableRedis } from "@taituri/devenv";
import { eventually } from "@taituri/testing/harness";

/**
 * The limiter with LIMITER_WORKERS=2 without Redis: started while it is away, and when it goes away
 * after the start, the primary's /readyz is 503 naming `redis` (as one process's is), and 200 once
 * Redis is back, with the same processes. The Redis is this file's own (startRestartableRedis),
 * never REDIS_URL's: someone else's server is not ours to stop.
 */
const root = new URL("../../", import.meta.url).pathname;
let redis: RestartableRedis;
let child: ChildProcess;
let ops: string;

interface Readiness {
  status: number;
  body: { ready: boolean; failing: string[] };
}

async function readiness(): Promise<Readiness> {
  const response = await fetch(`${ops}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness["body"] };
}

before(async () => {
  redis = await startRestartableRedis();
  await redis.stop();
  const rulesFile = join(mkdtempSync(join(tmpdir(), "limiter-workers-redis-")), "limits.yaml");
  writeFileSync(
    rulesFile,
    "limits:\n  ten: { scope: shopper, limit: 10, period: 1d }\nruleSets:\n  ten: { limits: [ten] }\n",
  );
  const opsPort = await freePort();
  child = spawn(process.execPath, [join(root, "services/limiter/src/main.ts")], {
    env: {
      ...process.env,
      LIMITER_WORKERS: "2",
      REDIS_URL: redis.url,
      LIMITER_GRPC_PORT: String(await freePort()),
      LIMITER_PORT: String(opsPort),
      LIMITER_RULES_FILE: rulesFile,
      LIMITER_KEY_PREFIX: `workers-redis-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: "error",
      OTEL_SDK_DISABLED: "true",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  ops = `http://127.0.0.1:${opsPort}`;
});

after(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await redis?.close();
});

test("started while Redis is away, the workers serve and /readyz names redis until it comes", async () => {
  // Both workers bound their gRPC server (`workers` passes), and neither reaches Redis.
  const waiting = await eventually(
    "/readyz naming redis alone",
    () =>
      readiness().then(
        (r) => r.body.failing.join() === "redis" && r,
        () => false,
      ),
    30_000,
  );
  assert.deepEqual(waiting, { status: 503, body: { ready: false, failing: ["redis"] } });

  await redis.start();
  await eventually("/readyz 200 once Redis is there", async () => (await readiness()).status === 200, 30_000);
});

test("Redis gone after the start: /readyz names redis, and is ready again once it is back", async () => {
  assert.deepEqual(await readiness(), { status: 200, body: { ready: true, failing: [] } });

  await redis.stop();
  const away = await eventually(
    "/readyz 503 while Redis is away",
    async () => {
      const r = await readiness();
      return r.status === 503 && r;
    },
    30_000,
  );
  // Only the name: which worker and why stay in the log, as with one process.
  assert.deepEqual(away.body, { ready: false, failing: ["redis"] });

  await redis.start();
  await eventually("/readyz 200 once Redis is back", async () => (await readiness()).status === 200, 30_000);
  assert.equal(child.exitCode, null, "the limiter was not restarted");
});

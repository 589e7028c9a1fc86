import assert from "node:assert/strict";
import { test } from "node:test";
import { createOpsServer, createRegistry } from "./index.ts";

test("healthz is always ok, readyz reports each dependency, metrics is Prometheus text", async () => {
  const registry = createRegistry("svc");
  let kafkaUp = true;
  const app = createOpsServer({
    registry,
    checks: {
      kafka: async () => {
        if (!kafkaUp) throw new Error("connection refused");
      },
      mongo: async () => {},
    },
  });
  assert.equal((await app.inject("/healthz")).statusCode, 200);
  const ready = await app.inject("/readyz");
  assert.equal(ready.statusCode, 200);
  assert.deepEqual(ready.json().checks, { kafka: "ok", mongo: "ok" });
  kafkaUp = false;
  const notReady = await app.inject("/readyz");
  assert.equal(notReady.statusCode, 503);
  assert.equal(notReady.json().checks.kafka, "connection refused");
  assert.equal((await app.inject("/healthz")).statusCode, 200);
  const metrics = await app.inject("/metrics");
  assert.match(metrics.headers["content-type"] as string, /text\/plain/);
  assert.match(metrics.body, /process_cpu_user_seconds_total\{service="svc"\}/);
});

test("a check that hangs fails readiness instead of hanging the probe", async () => {
  const app = createOpsServer({
    registry: createRegistry("svc"),
    checkTimeoutMs: 50,
    checks: { slow: () => new Promise(() => {}) },
  });
  const response = await app.inject("/readyz");
  assert.equal(response.statusCode, 503);
  assert.match(response.json().checks.slow, /no answer within 50 ms/);
});

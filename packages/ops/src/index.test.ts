import assert from "node:assert/strict";
import { test } from "node:test";
import { createOpsServer, createRegistry } from "./index.ts";

test("healthz is always ok, readyz names the checks that fail, metrics is Prometheus text", async () => {
  const registry = createRegistry("svc");
  let kafkaUp = true;
  const app = createOpsServer({
    registry,
    checks: {
      kafka: async () => {
        if (!kafkaUp) throw new Error("connect ECONNREFUSED 10.0.0.7:9092");
      },
      mongodb: async () => {},
    },
  });
  assert.equal((await app.inject("/healthz")).statusCode, 200);
  const ready = await app.inject("/readyz");
  assert.equal(ready.statusCode, 200);
  assert.deepEqual(ready.json(), { ready: true, failing: [] });
  kafkaUp = false;
  const notReady = await app.inject("/readyz");
  assert.equal(notReady.statusCode, 503);
  assert.deepEqual(notReady.json(), { ready: false, failing: ["kafka"] });
  // The error's text (and the broker's address in it) stays off the probe's answer.
  assert.doesNotMatch(notReady.body, /ECONNREFUSED|10\.0\.0\.7/);
  assert.equal((await app.inject("/healthz")).statusCode, 200);
  const metrics = await app.inject("/metrics");
  assert.match(metrics.headers["content-type"] as string, /text\/plain/);
  assert.match(metrics.body, /process_cpu_user_seconds_total\{service="svc"\}/);
});

test("a check that hangs fails readiness instead of hanging the probe", async () => {
  const app = createOpsServer({
    registry: createRegistry("svc"),
    checkTimeoutMs: 50,
    checks: { slow: () => new Promise(() => {}), fast: async () => {} },
  });
  const response = await app.inject("/readyz");
  assert.equal(response.statusCode, 503);
  assert.deepEqual(response.json(), { ready: false, failing: ["slow"] });
});

test("an ops server takes a service's listener timeouts", () => {
  const app = createOpsServer({
    registry: createRegistry("svc"),
    checks: {},
    listener: { requestTimeout: 1234, keepAliveTimeout: 4321 },
  });
  assert.equal(app.server.requestTimeout, 1234);
  assert.equal(app.server.keepAliveTimeout, 4321);
});

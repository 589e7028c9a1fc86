import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer } from "node:net";
import { test } from "node:test";
import { httpListenerOptions } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import type { ImageStore } from "@taituri/mongo";
import type { Verifier } from "@taituri/oidc";
import { Registry } from "prom-client";
import type { PaymentProvider } from "./adapters/provider.ts";
import type { PaymentStore } from "./adapters/store.ts";
import { buildPaymentApp } from "./app.ts";
import { loadPaymentConfig } from "./config.ts";
import { createMetrics } from "./metrics.ts";
import type { Payments } from "./payments.ts";
import { startPaymentService } from "./service.ts";

test("a provider webhook whose body comes too slowly is cut with 408 and its connection closed", {
  timeout: 10_000,
}, async () => {
  const app = buildPaymentApp({
    payments: {} as Payments,
    provider: { name: "stripe" } as PaymentProvider,
    store: {} as PaymentStore,
    images: {} as ImageStore,
    verifier: {} as Verifier,
    access: { callers: [], adminScope: "payment.admin", adminSubjects: [] },
    metrics: createMetrics(new Registry(), async () => ({})),
    logger: createLogger({ service: "test", level: "silent" }),
    listener: httpListenerOptions({
      HTTP_REQUEST_TIMEOUT_MS: 300,
      HTTP_HEADERS_TIMEOUT_MS: 300,
      HTTP_KEEP_ALIVE_TIMEOUT_MS: 65_000,
    }),
  });
  try {
    await app.listen({ port: 0, host: "127.0.0.1" });
    const address = app.server.address();
    assert.ok(address && typeof address === "object");
    const socket = connect(address.port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
    });
    // Announces 1,000 bytes, sends 10, then nothing.
    socket.write(
      "POST /payments/webhooks/stripe HTTP/1.1\r\nHost: payment\r\nStripe-Signature: t=1,v1=00\r\nContent-Length: 1000\r\n\r\n0123456789",
    );
    await once(socket, "close");
    assert.match(received, /^HTTP\/1\.1 408 /);
  } finally {
    await app.close();
  }
});

/** A port nobody listens on: the dependencies of a service started without them. */
async function unusedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  assert.ok(address && typeof address === "object");
  server.close();
  await once(server, "close");
  return address.port;
}

// Stopping ends the attempts on Kafka and MongoDB in flight, which takes the drivers a few seconds.
test("the public port answers only its routes; /healthz, /readyz and /metrics are on the ops port", {
  timeout: 30_000,
}, async () => {
  const config = loadPaymentConfig({
    PAYMENT_PORT: "0",
    PAYMENT_OPS_PORT: "0",
    // Kafka and MongoDB away: the service listens all the same, and says what it waits for.
    KAFKA_BROKERS: `127.0.0.1:${await unusedPort()}`,
    MONGO_URL: `mongodb://127.0.0.1:${await unusedPort()}/`,
  });
  const service = await startPaymentService(config, createLogger({ service: "test", level: "silent" }), {
    waitForDependencies: false,
  });
  try {
    const http = service.endpoints.http ?? "";
    const ops = service.endpoints.ops ?? "";
    assert.notEqual(new URL(ops).port, new URL(http).port);
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      assert.equal((await fetch(`${http}${path}`)).status, 404, `public ${path}`);
    }
    // The public routes are there: an unknown provider's webhook is a 404 of its own.
    const webhook = await fetch(`${http}/payments/webhooks/nobody`, { method: "POST", body: "{}" });
    assert.deepEqual(await webhook.json(), { error: "no such provider" });

    assert.equal((await fetch(`${ops}/healthz`)).status, 200);
    const ready = await fetch(`${ops}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { ready: false, failing: ["kafka", "mongodb"] });
    assert.match(
      await (await fetch(`${ops}/metrics`)).text(),
      /process_cpu_user_seconds_total\{service="payment"\}/,
    );
    assert.equal((await fetch(`${ops}/payments/webhooks/local`, { method: "POST", body: "{}" })).status, 404);
  } finally {
    await service.stop();
  }
  await assert.rejects(
    fetch(`${service.endpoints.ops}/healthz`),
    "the ops listener is closed with the service",
  );
});

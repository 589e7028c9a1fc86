import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { test } from "node:test";
import { httpListenerOptions } from "@taituri/config";
import { createLogger } from "@taituri/logging";
import type { ImageStore } from "@taituri/mongo";
import type { Verifier } from "@taituri/oidc";
import { Registry } from "prom-client";
import type { PaymentProvider } from "./adapters/provider.ts";
import type { PaymentStore } from "./adapters/store.ts";
import { buildPaymentApp } from "./app.ts";
import { createMetrics } from "./metrics.ts";
import type { Payments } from "./payments.ts";

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
    registry: new Registry(),
    checks: {},
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

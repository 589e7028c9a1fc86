import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { after, test } from "node:test";
import { httpListenerOptions } from "@taituri/config";
import { EventProducer, type Publisher, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { Registry } from "@taituri/ops";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import type { FastifyInstance } from "fastify";
import type { Kafka, ProducerBatch } from "kafkajs";
import { buildIngressApp } from "./app.ts";
import { loadIngressConfig, roleSetting } from "./config.ts";
import { startIngressService } from "./service.ts";

// A regression would leave a socket open for good: fail the test instead of hanging.
const bounded = { timeout: 10_000 };
const apps: FastifyInstance[] = [];
after(async () => {
  for (const app of apps) await app.close();
});

/** The webhook app on a real port, with the listener's timeouts from these settings. */
async function listening(env: Record<string, string>, publisher?: Publisher) {
  const config = loadIngressConfig({
    WHATSAPP_APP_SECRET: "secret",
    WHATSAPP_VERIFY_TOKEN: "verify-me",
    WHATSAPP_ACCESS_TOKEN: "token",
    ...env,
  });
  const registry = new Registry();
  const app = buildIngressApp({
    appSecrets: roleSetting(config, "WHATSAPP_APP_SECRET"),
    verifyToken: roleSetting(config, "WHATSAPP_VERIFY_TOKEN"),
    bodyLimitBytes: config.WEBHOOK_BODY_LIMIT_BYTES,
    topics: topicNames("t."),
    publisher: publisher ?? { send: async () => {} },
    logger: createLogger({ service: "test", level: "silent" }),
    registry,
    publishTimeoutMs: 5_000,
    recentIdsCapacity: 0,
    listener: httpListenerOptions(config),
  });
  apps.push(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  assert.ok(address && typeof address === "object");
  return { app, port: address.port, registry };
}

/** A raw client: what it wrote is up to the test; resolves with all it was sent once closed. */
function rawClient(port: number): { socket: Socket; closed: Promise<string> } {
  const socket = connect(port, "127.0.0.1");
  let received = "";
  socket.on("data", (chunk: Buffer) => {
    received += chunk.toString("latin1");
  });
  const closed = once(socket, "close").then(() => received);
  return { socket, closed };
}

const signed = (() => {
  const body = JSON.stringify(textWebhook("hi", { wamid: "wamid.slow", waId: "555", phoneNumberId: "PN" }));
  return { body, signature: signWebhook(body, "secret") };
})();

test("a body sent too slowly is cut with 408 and its connection closed", bounded, async () => {
  const { port } = await listening({ HTTP_REQUEST_TIMEOUT_MS: "300", HTTP_HEADERS_TIMEOUT_MS: "300" });
  const { socket, closed } = rawClient(port);
  socket.write(
    [
      "POST /webhook HTTP/1.1",
      "Host: ingress",
      "Content-Type: application/json",
      `Content-Length: ${Buffer.byteLength(signed.body)}`,
      `X-Hub-Signature-256: ${signed.signature}`,
      "",
      signed.body.slice(0, 10),
    ].join("\r\n"),
  );
  // The rest never comes: a slow-loris body.
  const received = await closed;
  assert.match(received, /^HTTP\/1\.1 408 /);
});

test("headers sent too slowly are cut with 408 and the connection closed", bounded, async () => {
  const { port } = await listening({ HTTP_REQUEST_TIMEOUT_MS: "1000", HTTP_HEADERS_TIMEOUT_MS: "300" });
  const { socket, closed } = rawClient(port);
  socket.write("POST /webhook HTTP/1.1\r\nHost: ingress\r\nX-Slow: ");
  assert.match(await closed, /^HTTP\/1\.1 408 /);
});

test("a request without a well-formed signature is refused before its body is read", bounded, async () => {
  const { port, registry } = await listening({});
  const { socket, closed } = rawClient(port);
  // Announces 2 MB and sends none of it: the answer cannot have waited for the body.
  socket.write(
    "POST /webhook HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n",
  );
  const received = await closed;
  assert.match(received, /^HTTP\/1\.1 401 /);
  assert.match(received, /\r\nconnection: close\r\n/i);
  assert.match(
    await registry.metrics(),
    /webhook_requests_total\{outcome="bad_signature",reason="missing"\} 1/,
  );
});

test(
  "the listener keeps idle connections for HTTP_KEEP_ALIVE_TIMEOUT_MS and answers a prompt client",
  bounded,
  async () => {
    const { app, port } = await listening({ HTTP_KEEP_ALIVE_TIMEOUT_MS: "70000" });
    assert.equal(app.server.keepAliveTimeout, 70_000);
    assert.equal(app.server.requestTimeout, 10_000);
    assert.equal(app.server.headersTimeout, 5_000);
    const response = await fetch(`http://127.0.0.1:${port}/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": signed.signature },
      body: signed.body,
    });
    assert.equal(response.status, 200);
  },
);

test("headers allowed longer than the whole request is a configuration error", () => {
  assert.throws(
    () =>
      loadIngressConfig({
        WHATSAPP_APP_SECRET: "secret",
        WHATSAPP_VERIFY_TOKEN: "verify-me",
        WHATSAPP_ACCESS_TOKEN: "token",
        HTTP_REQUEST_TIMEOUT_MS: "1000",
        HTTP_HEADERS_TIMEOUT_MS: "2000",
      }),
    /HTTP_HEADERS_TIMEOUT_MS: must be at most HTTP_REQUEST_TIMEOUT_MS \(1000\)/,
  );
});

test(
  "with the producer's queue full a webhook is answered 503 at once; what was acknowledged is stored",
  bounded,
  async () => {
    // A broker that holds every request until the test answers it.
    const requests: { batch: ProducerBatch; ack: () => void }[] = [];
    const kafka = {
      producer: () => ({
        connect: async () => {},
        disconnect: async () => {},
        sendBatch: (batch: ProducerBatch) =>
          new Promise((resolve) => requests.push({ batch, ack: () => resolve([]) })),
      }),
    } as unknown as Kafka;
    const producer = new EventProducer(kafka, { maxQueuedMessages: 1 });
    const { port, registry } = await listening({}, producer);
    const post = (wamid: string) => {
      const body = JSON.stringify(textWebhook("hi", { wamid, waId: "555", phoneNumberId: "PN" }));
      return fetch(`http://127.0.0.1:${port}/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-hub-signature-256": signWebhook(body, "secret") },
        body,
      });
    };
    const first = post("wamid.first");
    while (requests.length === 0) await new Promise((resolve) => setImmediate(resolve));

    const refused = await post("wamid.second");
    assert.equal(refused.status, 503, "answered while the first send still waits");
    assert.match(
      await registry.metrics(),
      /webhook_requests_total\{outcome="unavailable",reason="queue_full"\} 1/,
    );
    assert.equal(requests.length, 1, "the refused body was never queued");

    requests[0]?.ack();
    assert.equal((await first).status, 200);
    assert.equal(requests[0]?.batch.topicMessages?.[0]?.messages.length, 1);
    assert.equal(requests[0]?.batch.topicMessages?.[0]?.topic, "t.inbound.v1");
  },
);

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
test("the public port answers only the webhook; /healthz, /readyz and /metrics are on the ops port", {
  timeout: 30_000,
}, async () => {
  const config = loadIngressConfig({
    WHATSAPP_APP_SECRET: "secret",
    WHATSAPP_VERIFY_TOKEN: "verify-me",
    INGRESS_PORT: "0",
    INGRESS_OPS_PORT: "0",
    // Kafka and MongoDB away: the service listens all the same, and says what it waits for.
    KAFKA_BROKERS: `127.0.0.1:${await unusedPort()}`,
    MONGO_URL: `mongodb://127.0.0.1:${await unusedPort()}/`,
    INGRESS_ROLE: "webhook",
  });
  const service = await startIngressService(config, createLogger({ service: "test", level: "silent" }), {
    waitForDependencies: false,
  });
  try {
    const webhook = new URL(service.endpoints.webhook ?? "");
    const ops = service.endpoints.ops ?? "";
    assert.notEqual(new URL(ops).port, webhook.port);
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      assert.equal((await fetch(`${webhook.origin}${path}`)).status, 404, `public ${path}`);
    }
    assert.equal(
      (await fetch(`${webhook.href}?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=7`)).status,
      200,
    );

    assert.equal((await fetch(`${ops}/healthz`)).status, 200);
    const ready = await fetch(`${ops}/readyz`);
    assert.equal(ready.status, 503);
    // Kafka alone: the webhook never touches MongoDB.
    assert.deepEqual(await ready.json(), { ready: false, failing: ["kafka"] });
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    assert.match(metrics, /webhook_requests_total\{outcome="verify_ok",reason="",service="ingress"\} 1/);
    assert.equal((await fetch(`${ops}/webhook`)).status, 404, "no webhook on the ops port");
  } finally {
    await service.stop();
  }
  await assert.rejects(
    fetch(`${service.endpoints.ops}/healthz`),
    "the ops listener is closed with the service",
  );
});

test("a dispatcher on its own listens on the ops port alone, and is ready only with Kafka and MongoDB", {
  timeout: 30_000,
}, async () => {
  const webhookPort = await unusedPort();
  const config = loadIngressConfig({
    // Neither the app secret nor the verify token: a dispatcher never sees Meta's webhooks.
    WHATSAPP_ACCESS_TOKEN: "token",
    INGRESS_ROLE: "dispatcher",
    INGRESS_PORT: String(webhookPort),
    INGRESS_OPS_PORT: "0",
    KAFKA_BROKERS: `127.0.0.1:${await unusedPort()}`,
    MONGO_URL: `mongodb://127.0.0.1:${await unusedPort()}/`,
  });
  const service = await startIngressService(config, createLogger({ service: "test", level: "silent" }), {
    waitForDependencies: false,
  });
  try {
    assert.equal(service.endpoints.webhook, undefined);
    await assert.rejects(fetch(`http://127.0.0.1:${webhookPort}/webhook`), "nothing listens on INGRESS_PORT");
    const ops = service.endpoints.ops ?? "";
    assert.equal((await fetch(`${ops}/healthz`)).status, 200);
    const ready = await fetch(`${ops}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { ready: false, failing: ["kafka", "mongodb"] });
  } finally {
    await service.stop();
  }
});

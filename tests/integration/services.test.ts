import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { credentials, Client as GrpcClient } from "@grpc/grpc-js";
import { loadConversationConfig } from "@taituri/conversation-service/config";
import { startConversationService } from "@taituri/conversation-service/service";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadGenerationConfig } from "@taituri/generation-service/config";
import { startGenerationService } from "@taituri/generation-service/service";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { startLimiterService } from "@taituri/limiter-service/service";
import { createLogger } from "@taituri/logging";
import { loadPaymentConfig } from "@taituri/payment-service/config";
import { startPaymentService } from "@taituri/payment-service/service";
import type { RunningService } from "@taituri/service";
import { runId } from "@taituri/testing/harness";

/** Every service starts from its factory on the real servers and serves its ops endpoints. */
const logger = createLogger({ service: "it", level: "silent" });
const run = runId();
let infra: Infra;
const services: Record<string, RunningService> = {};

before(async () => {
  infra = await startInfra();
  const prefix = `it-${run}.`;
  // Each service logs in to Kafka as itself (its own settings), allowed only its own topics and
  // groups under the prefix; the limiter does not use Kafka.
  await infra.kafka.authorize(prefix);
  const kafka = infra.kafka.settings;
  const env = {
    MONGO_URL: infra.mongo.url,
    MONGO_DB: `it_services_${run}`,
    REDIS_URL: infra.redis.url,
    KAFKA_TOPIC_PREFIX: prefix,
  };
  services.ingress = await startIngressService(
    loadIngressConfig({
      ...env,
      ...kafka("ingress"),
      INGRESS_PORT: "0",
      INGRESS_OPS_PORT: "0",
      WHATSAPP_APP_SECRET: "s",
      WHATSAPP_VERIFY_TOKEN: "v",
      WHATSAPP_ACCESS_TOKEN: "t",
      WHATSAPP_API_URL: "http://127.0.0.1:9",
    }),
    logger,
  );
  services.conversation = await startConversationService(
    loadConversationConfig({ ...env, ...kafka("conversation"), CONVERSATION_PORT: "0" }),
    logger,
  );
  services.generation = await startGenerationService(
    loadGenerationConfig({ ...env, ...kafka("generation"), GENERATION_PORT: "0" }),
    logger,
  );
  services.payment = await startPaymentService(
    loadPaymentConfig({ ...env, ...kafka("payment"), PAYMENT_PORT: "0", PAYMENT_OPS_PORT: "0" }),
    logger,
  );
  services.limiter = await startLimiterService(
    loadLimiterConfig({ ...env, LIMITER_PORT: "0", LIMITER_GRPC_PORT: "0" }),
    logger,
  );
});

after(async () => {
  for (const service of Object.values(services).reverse()) await service.stop();
  await infra?.stop();
});

describe("service processes", () => {
  for (const name of ["ingress", "conversation", "generation", "payment", "limiter"]) {
    test(`${name}: /healthz alive, /readyz ready with its dependencies, /metrics in Prometheus text`, async () => {
      const base = services[name]?.endpoints.ops;
      assert.ok(base);
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200);
      const ready = await fetch(`${base}/readyz`);
      const body = (await ready.json()) as { ready: boolean; failing: string[] };
      assert.equal(ready.status, 200, JSON.stringify(body));
      assert.deepEqual(body, { ready: true, failing: [] });
      const metrics = await fetch(`${base}/metrics`);
      assert.match(await metrics.text(), new RegExp(`process_resident_memory_bytes\\{service="${name}"\\}`));
    });
  }

  test("ingress and payment: the public port serves none of the ops endpoints", async () => {
    const publicBases = {
      ingress: new URL(services.ingress?.endpoints.webhook ?? "").origin,
      payment: services.payment?.endpoints.http ?? "",
    };
    for (const [name, base] of Object.entries(publicBases)) {
      assert.notEqual(base, services[name]?.endpoints.ops, name);
      for (const path of ["/healthz", "/readyz", "/metrics"])
        assert.equal((await fetch(`${base}${path}`)).status, 404, `${name} ${base}${path}`);
    }
  });

  test("limiter: the standard gRPC health service answers SERVING without credentials", async () => {
    const address = services.limiter?.endpoints.grpc;
    assert.ok(address);
    const client = new GrpcClient(address, credentials.createInsecure());
    try {
      // grpc.health.v1.HealthCheckRequest { service = "" } is an empty message; the response's
      // field 1 (status) is SERVING = 1, encoded as 0x08 0x01.
      const response = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          "/grpc.health.v1.Health/Check",
          (request: Buffer) => request,
          (bytes: Buffer) => bytes,
          Buffer.alloc(0),
          (error, value) => (error || !value ? reject(error) : resolve(value)),
        ),
      );
      assert.deepEqual([...response], [0x08, 0x01]);
    } finally {
      client.close();
    }
  });
});

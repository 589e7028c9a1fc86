import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { after, before, describe, test } from "node:test";
import { loadConversationConfig } from "@taituri/conversation-service/config";
import { startConversationService } from "@taituri/conversation-service/service";
import { loadGenerationConfig } from "@taituri/generation-service/config";
import { startGenerationService } from "@taituri/generation-service/service";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { startLimiterService } from "@taituri/limiter-service/service";
import { createLogger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import type { RunningService } from "@taituri/service";
import { type Infra, startInfra } from "@taituri/testing";
import { type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";
import { writeGenerationRules } from "./support/generation.ts";
import { Shopper as BaseShopper } from "./support/shopper.ts";

/**
 * A gift journey through every real service but payment: signed webhooks into ingress, the
 * conversation, the REAL generation service (local renderer) admitted by the REAL limiter with
 * OIDC tokens from a local issuer, images uploaded from GridFS to a fake Graph API by the
 * dispatcher. The shopper sees real PNG designs and picks one.
 */
const SECRET = "gen-journey-secret";
const OIDC_SECRET = "gen-journey-oidc";
const run = randomUUID().slice(0, 8);
const prefix = `genjourney-${run}.`;
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
let infra: Infra;
let graph: FakeGraphApi;
let issuer: LocalIssuer;
const services: RunningService[] = [];
let ingress: RunningService;

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  issuer = await startLocalIssuer({ clients: { generation: OIDC_SECRET } });
  const env = {
    KAFKA_BROKERS: infra.kafka.brokers.join(","),
    MONGO_URL: infra.mongo.url,
    MONGO_DB: `genjourney_${run}`,
    REDIS_URL: infra.redis.url,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_PARTITIONS: "3",
  };
  const limiter = await startLimiterService(
    loadLimiterConfig({
      ...env,
      LIMITER_PORT: "0",
      LIMITER_GRPC_PORT: "0",
      LIMITER_RULES_FILE: writeGenerationRules(mkdtempSync(`${tmpdir()}/genjourney-`)),
      LIMITER_KEY_PREFIX: `genjourney-${run}`,
      OIDC_ISSUER_URL: issuer.url,
    }),
    logger,
  );
  services.push(limiter);
  services.push(
    await startGenerationService(
      loadGenerationConfig({
        ...env,
        GENERATION_PORT: "0",
        LIMITER_URL: limiter.endpoints.grpc,
        OIDC_ISSUER_URL: issuer.url,
        OIDC_CLIENT_SECRET: OIDC_SECRET,
      }),
      logger,
    ),
  );
  services.push(
    await startConversationService(loadConversationConfig({ ...env, CONVERSATION_PORT: "0" }), logger),
  );
  ingress = await startIngressService(
    loadIngressConfig({
      ...env,
      INGRESS_PORT: "0",
      WHATSAPP_APP_SECRET: SECRET,
      WHATSAPP_VERIFY_TOKEN: "v",
      WHATSAPP_ACCESS_TOKEN: "t",
      WHATSAPP_API_URL: graph.url,
    }),
    logger,
  );
  services.push(ingress);
});

after(async () => {
  for (const service of services.reverse()) await service.stop();
  await issuer?.close();
  await graph?.close();
  await infra?.stop();
});

class Shopper extends BaseShopper {
  constructor() {
    super({
      waId: `3462${run.replace(/\D/g, "0").slice(0, 4)}001`,
      phoneNumberId: "PNGJ",
      webhook: () => ingress.endpoints.webhook ?? "",
      secret: SECRET,
      graph,
      wamidPrefix: run,
      timeoutMs: 45_000,
    });
  }
}

describe("gift journey with the real generation service", { timeout: 5 * 60_000 }, () => {
  test("the shopper receives three real PNG designs, distinct, and can choose one", async () => {
    const ana = new Shopper();
    await ana.say("I want a gift");
    await ana.next();
    await ana.say("Rosa");
    const [themes] = await ana.next();
    await ana.tap(themes?.ids.find((id) => id.endsWith(":birthday")) ?? "");
    const [styles] = await ana.next();
    await ana.tap(styles?.ids.find((id) => id.endsWith(":retro")) ?? "");
    const [confirm] = await ana.next();
    await ana.tap(confirm?.ids[0] ?? "");
    assert.match((await ana.next())[0]?.text ?? "", /Creating your designs/);
    const shown = await ana.next(4);
    assert.deepEqual(
      shown.map((m) => `${m.type}:${m.text.slice(0, 8)}`),
      ["image:Design 1", "image:Design 2", "image:Design 3", "list:Which on"],
    );
    // Each image was uploaded to WhatsApp's media endpoint as a PNG, and they differ.
    const uploads = graph.uploads().filter((u) => u.status === 200);
    assert.equal(uploads.length, 3);
    const files = uploads.map((u) => String(u.body));
    for (const file of files) {
      assert.match(file, /Content-Type: image\/png/i);
      assert.match(file, /PNG[\s\S]{0,8}IHDR/);
    }
    assert.equal(new Set(files.map((f) => f.replace(/-{2,}[\w-]+/g, ""))).size, 3, "three distinct images");
    assert.equal(new Set(shown.slice(0, 3).map((m) => m.mediaId)).size, 3);
    // The shopper picks design 2 and is taken to checkout.
    await ana.tap(shown[3]?.ids[1] ?? "");
    assert.match((await ana.next())[0]?.text ?? "", /Preparing your checkout/);
  });
});

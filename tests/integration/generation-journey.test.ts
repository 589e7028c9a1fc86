import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { createLogger } from "@taituri/logging";
import { type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import { Shopper as BaseShopper } from "./support/shopper.ts";
import { type Stack, startStack } from "./support/stack.ts";

/**
 * A gift journey through every real service but payment: signed webhooks into ingress, the
 * conversation, the REAL generation service (local renderer) admitted by the REAL limiter with
 * OIDC tokens from a local issuer, images uploaded from GridFS to a fake Graph API by the
 * dispatcher. The shopper sees real PNG designs and picks one.
 */
const SECRET = "gen-journey-secret";
const run = runId();
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
let infra: Infra;
let graph: FakeGraphApi;
let stack: Stack;

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  stack = await startStack({
    id: `genjourney-${run}`,
    infra,
    graph,
    logger,
    secret: SECRET,
    generation: true,
  });
});

after(async () => {
  await stack?.stop();
  await graph?.close();
  await infra?.stop();
});

class Shopper extends BaseShopper {
  constructor() {
    super({
      waId: `3462${run.replace(/\D/g, "0").slice(0, 4)}001`,
      phoneNumberId: "PNGJ",
      webhook: () => stack.ingress.endpoints.webhook ?? "",
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
    const shown = await ana.toDesigns("retro");
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
    await ana.giveAddress();
    assert.match((await ana.next())[0]?.text ?? "", /Preparing your checkout/);
  });
});

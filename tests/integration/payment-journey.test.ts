import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { createKafka, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import type { RunningService } from "@taituri/service";
import { type Infra, startInfra } from "@taituri/testing";
import { type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";
import type { Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";
import { Shopper as BaseShopper } from "./support/shopper.ts";
import { type Stack, startStack } from "./support/stack.ts";
import { FakeWorld } from "./support/world.ts";

/**
 * Whole journeys that end in a real payment: signed webhooks into ingress, the conversation, the
 * dispatcher and a fake Graph API, as in journey.test.ts, but with the real payment service and
 * its local provider. Only generation is answered by FakeWorld. The shopper's browser is plain
 * HTTP: it opens the checkout link the bot sent and presses the page's buttons.
 */
const SECRET = "payment-journey-secret";
const run = randomUUID().slice(0, 8);
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
let infra: Infra;
let graph: FakeGraphApi;
let stack: Stack;
let payments: RunningService;
let world: FakeWorld;
let mongo: MongoClient;
let db: Db;
let kafka: Kafka;

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  stack = await startStack({
    id: `payjourney-${run}`,
    infra,
    graph,
    logger,
    secret: SECRET,
    payment: true,
    conversation: { TIMER_POLL_MS: "200" },
  });
  payments = stack.payment as RunningService;
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(stack.dbName);
  kafka = createKafka({ brokers: infra.kafka.brokers, clientId: "world", logger });
  world = new FakeWorld(kafka, topicNames(stack.prefix), new ImageStore(db), { payment: false });
  await world.start(`payjourney-${run}`);
});

after(async () => {
  await world?.stop();
  await stack?.stop();
  await mongo?.close();
  await graph?.close();
  await infra?.stop();
});

let shoppers = 0;
class Shopper extends BaseShopper {
  constructor() {
    shoppers += 1;
    super({
      waId: `3461${run.replace(/\D/g, "0").slice(0, 4)}${String(shoppers).padStart(3, "0")}`,
      phoneNumberId: "PNQ",
      webhook: () => stack.ingress.endpoints.webhook ?? "",
      secret: SECRET,
      graph,
      wamidPrefix: run,
    });
  }

  /** From hello to the list of designs; returns that list. */
  async toList() {
    const shown = await this.toDesigns();
    assert.equal(shown[3]?.type, "list");
    return shown[3];
  }
}

const orders = () => db.collection("payment_orders");

describe("journeys paid through the local checkout", () => {
  test("from hello to paid: the checkout page shows the design, Pay confirms in WhatsApp", async () => {
    const ana = new Shopper();
    const list = await ana.toList();
    await ana.tap(list?.ids[1] ?? "");
    assert.match((await ana.next())[0]?.text ?? "", /Preparing your checkout/);
    const [pay] = await ana.next();
    assert.equal(pay?.type, "cta_url");
    assert.match(pay?.text ?? "", /Your ceramic mug with design 2: €19\.90/);
    const link = pay?.url ?? "";
    assert.match(link, new RegExp(`^${payments.endpoints.http}/checkout/lcs_`));

    // The shopper's browser: the page, the design generation stored, then "Pay".
    const page = await (await fetch(link)).text();
    assert.match(page, /ceramic mug/);
    assert.match(page, /€19\.90/);
    const order = await orders().findOne({ conversationId: ana.conversationId });
    assert.ok(order);
    const image = await fetch(`${link}/image`);
    assert.equal(image.status, 200);
    assert.equal(Buffer.from(await image.arrayBuffer()).toString(), `png ${order.imageId}`);
    const paid = await fetch(`${link}/pay`, { method: "POST" });
    assert.match(await paid.text(), /Payment received/);

    const [confirmation] = await ana.next();
    assert.match(confirmation?.text ?? "", new RegExp(`Payment received.*Your order number is ${order._id}`));
    const after = await orders().findOne({ _id: order._id });
    assert.equal(after?.state, "paid");
    assert.equal(after?.amount, 1990);
  });

  test("a cancelled checkout: the shopper chooses again, gets a new link, pays once", async () => {
    const bo = new Shopper();
    const list = await bo.toList();
    await bo.tap(list?.ids[0] ?? "");
    await bo.next();
    const [first] = await bo.next();
    await fetch(`${first?.url}/cancel`, { method: "POST" });
    const [expired, again] = await bo.next(2);
    assert.match(expired?.text ?? "", /checkout link expired/);
    assert.equal(again?.type, "list");
    // The same design again: the same order, a new session and link.
    await bo.tap(again?.ids[0] ?? "");
    await bo.next();
    const [second] = await bo.next();
    assert.equal(second?.type, "cta_url");
    assert.notEqual(second?.url, first?.url);
    assert.equal(
      (await fetch(`${first?.url}/pay`, { method: "POST" })).status,
      409,
      "the old link is closed",
    );
    await fetch(`${second?.url}/pay`, { method: "POST" });
    assert.match((await bo.next())[0]?.text ?? "", /Payment received/);
    const all = await orders().find({ conversationId: bo.conversationId }).toArray();
    assert.equal(all.length, 1, "one order");
    assert.equal(all[0]?.state, "paid");
    assert.equal(all[0]?.attempt, 2);
  });
});

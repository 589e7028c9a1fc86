import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { createKafka, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import { type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import type { Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";
import { Shopper as BaseShopper } from "./support/shopper.ts";
import { type Stack, startStack } from "./support/stack.ts";
import { FakeWorld } from "./support/world.ts";

/**
 * Whole gift journeys on the real servers: signed webhooks into ingress, the conversation service,
 * the dispatcher, a fake Graph API; generation and payment answered at the Kafka boundary by
 * FakeWorld. Each test is one shopper.
 */
const SECRET = "journey-secret";
const run = runId();
const prefix = `journey-${run}.`;
const topics = topicNames(prefix);
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const DEADLINE_MS = 2500;
let infra: Infra;
let graph: FakeGraphApi;
let stack: Stack;
let world: FakeWorld;
let mongo: MongoClient;
let db: Db;
let kafka: Kafka;

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  stack = await startStack({
    id: `journey-${run}`,
    infra,
    graph,
    logger,
    secret: SECRET,
    conversation: { GENERATION_DEADLINE_MS: String(DEADLINE_MS), TIMER_POLL_MS: "200" },
  });
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(stack.dbName);
  kafka = createKafka({ ...infra.kafka.client, clientId: "world", logger });
  world = new FakeWorld(kafka, topics, new ImageStore(db));
  await world.start(`journey-${run}`);
});

after(async () => {
  await world?.stop();
  await stack?.stop();
  await mongo?.close();
  await graph?.close();
  await infra?.stop();
});

let shoppers = 0;
/** A phone number of this run, new each time. */
const phone = () => {
  shoppers += 1;
  return `3460${run.replace(/\D/g, "0").slice(0, 4)}${String(shoppers).padStart(3, "0")}`;
};
/** A BSUID of this run, new each time (a country code, a dot, digits). */
const bsuid = () => `US.${BigInt(`0x${randomUUID().replaceAll("-", "").slice(0, 15)}`)}`;

class Shopper extends BaseShopper {
  constructor(ids: { waId?: string; userId?: string } = { waId: phone() }) {
    super({
      ...ids,
      phoneNumberId: "PNJ",
      webhook: () => stack.ingress.endpoints.webhook ?? "",
      secret: SECRET,
      graph,
      wamidPrefix: run,
    });
  }

  /** Walks from hello to the "create designs" button; returns that button's id. */
  async toReady(): Promise<string> {
    const confirm = await this.toConfirmation();
    assert.match(
      confirm?.text ?? "",
      /A Birthday design in Watercolor style for Rosa, printed on a ceramic mug/,
    );
    return confirm?.ids[0] ?? "";
  }
}

const requestsOf = (s: Shopper) =>
  world.generationRequests.filter((r) => r.conversationId === s.conversationId);
const ordersOf = (s: Shopper) => world.paymentRequests.filter((r) => r.conversationId === s.conversationId);

describe("gift journeys", () => {
  test("from hello to paid: images to choose from, a checkout link, a confirmation with the order id", async () => {
    const ana = new Shopper();
    const generate = await ana.toReady();
    await ana.tap(generate);
    assert.match((await ana.next())[0]?.text ?? "", /Creating your designs/);
    const shown = await ana.next(4);
    assert.deepEqual(
      shown.map((m) => `${m.type}:${m.text.slice(0, 8)}`),
      ["image:Design 1", "image:Design 2", "image:Design 3", "list:Which on"],
    );
    assert.equal(requestsOf(ana).length, 1);
    const request = requestsOf(ana)[0];
    assert.deepEqual(
      [request?.recipient, request?.theme, request?.style, request?.count],
      ["Rosa", "birthday", "watercolor", 3],
    );
    await ana.tap(shown[3]?.ids[1] ?? "");
    await ana.giveAddress();
    assert.match((await ana.next())[0]?.text ?? "", /Preparing your checkout/);
    const [pay] = await ana.next();
    assert.equal(pay?.type, "cta_url");
    assert.match(
      pay?.text ?? "",
      /Your ceramic mug with design 2: €19\.90\. Tap to pay securely\. \(https:\/\/pay\.local\//,
    );
    const [order] = ordersOf(ana);
    assert.equal(order?.amount, 1990);
    assert.equal(order?.currency, "EUR");
    await world.paymentEvent(order?.orderId ?? "", ana.conversationId, { $case: "succeeded", value: {} });
    const [confirmation] = await ana.next();
    assert.match(
      confirmation?.text ?? "",
      new RegExp(`Your order number is ${world.orderNumber(order?.orderId ?? "")}\\.`),
    );
  });

  test("a voice note where text is expected re-prompts and does not advance", async () => {
    const bo = new Shopper();
    await bo.say("hi");
    await bo.next();
    await bo.voice();
    const replies = await bo.next(2);
    assert.match(replies[0]?.text ?? "", /only read text and buttons/);
    assert.match(replies[1]?.text ?? "", /name of the person/);
  });

  test('"generate" tapped twice, then typed: one generation request, and "on its way"', async () => {
    const cy = new Shopper();
    world.generationMode = "silent";
    try {
      const generate = await cy.toReady();
      await cy.tap(generate);
      await cy.next();
      await cy.tap(generate);
      assert.match((await cy.next())[0]?.text ?? "", /on their way/);
      await cy.say("generate");
      assert.match((await cy.next())[0]?.text ?? "", /on their way/);
      assert.equal(requestsOf(cy).length, 1);
    } finally {
      world.generationMode = "complete";
    }
  });

  test("no result within the deadline: an apology and a retry button; the late result is ignored", async () => {
    const di = new Shopper();
    world.generationMode = "silent";
    let roundId = "";
    try {
      const generate = await di.toReady();
      await di.tap(generate);
      await di.next();
      const [apology] = await di.next();
      assert.match(apology?.text ?? "", /something went wrong.*Nothing was charged/);
      roundId = requestsOf(di)[0]?.roundId ?? "";
      assert.match(apology?.ids[0] ?? "", /^gen:j1\.r2:go$/);
    } finally {
      world.generationMode = "complete";
    }
    await world.generationResult(roundId, di.conversationId, "complete");
    await di.quiet();
  });

  test("AI failure and limiter refusal each bring the shopper back, with what to do next", async () => {
    const ed = new Shopper();
    world.generationMode = "fail";
    const generate = await ed.toReady();
    await ed.tap(generate);
    await ed.next();
    const [failed] = await ed.next();
    assert.match(failed?.text ?? "", /something went wrong/);
    world.generationMode = "reject";
    await ed.tap(failed?.ids[0] ?? "");
    await ed.next();
    const [limited] = await ed.next(1);
    assert.match(limited?.text ?? "", /try again in 20 minutes/);
    world.generationMode = "complete";
  });

  test('"buy" twice gives one order and one link; "paid" twice gives one confirmation', async () => {
    const fa = new Shopper();
    const generate = await fa.toReady();
    await fa.tap(generate);
    await fa.next();
    const list = (await fa.next(4))[3];
    await fa.tap(list?.ids[0] ?? "");
    const confirm = await fa.giveAddress();
    await fa.next(2);
    // The design tapped again, then Confirm again: the same order's link, never a second order.
    await fa.tap(list?.ids[0] ?? "");
    const [again] = await fa.next();
    assert.equal(again?.type, "cta_url");
    await fa.tap(confirm?.ids.find((id) => id.endsWith(":ok")) ?? "");
    const afterConfirm = await fa.next(2);
    assert.equal(afterConfirm[1]?.url, again?.url, JSON.stringify(afterConfirm));
    assert.equal(ordersOf(fa).length, 1);
    const orderId = ordersOf(fa)[0]?.orderId ?? "";
    await world.paymentEvent(orderId, fa.conversationId, { $case: "succeeded", value: {} });
    await world.paymentEvent(orderId, fa.conversationId, { $case: "succeeded", value: {} });
    assert.match((await fa.next())[0]?.text ?? "", /Payment received/);
    await fa.quiet();
  });

  test("a tap on an older message's button is recognised and not applied", async () => {
    const gu = new Shopper();
    await gu.say("hello");
    await gu.next();
    await gu.say("Gus");
    const [themes] = await gu.next();
    await gu.tap(themes?.ids[0] ?? "");
    await gu.next();
    await gu.tap(themes?.ids[1] ?? "");
    const replies = await gu.next(2);
    assert.match(replies[0]?.text ?? "", /earlier message/);
    assert.match(replies[1]?.text ?? "", /Now pick a style/);
  });

  test("back after the session TTL: continue or start over", async () => {
    const hu = new Shopper();
    await hu.say("hello");
    await hu.next();
    await hu.say("Hugo");
    await hu.next();
    hu.clock += 3 * 3600;
    await hu.say("love");
    const [welcome] = await hu.next();
    assert.match(welcome?.text ?? "", /Welcome back/);
    await hu.tap(welcome?.ids[0] ?? "");
    assert.match((await hu.next())[0]?.text ?? "", /A gift for Hugo/);
  });

  test("restart, help and cancel work mid-journey", async () => {
    const iv = new Shopper();
    await iv.say("hello");
    await iv.next();
    await iv.say("Ivy");
    await iv.next();
    await iv.say("help");
    assert.match((await iv.next(2))[0]?.text ?? "", /personalised gifts/);
    await iv.say("restart");
    assert.match((await iv.next())[0]?.text ?? "", /Who is this gift for/);
    await iv.say("cancel");
    assert.match((await iv.next())[0]?.text ?? "", /Cancelled/);
  });
});

describe("shoppers known by a business-scoped user id (BSUID)", () => {
  const conversations = () => db.collection<{ _id: string }>("conversation_conversations");
  /** The ids the fake Graph API was asked to deliver to: `to` and `recipient` of each send. */
  const addressing = (s: Shopper) =>
    s.requests().map((r) => {
      const body = r.body as { to?: string; recipient?: string };
      return `${body.to ?? "-"}|${body.recipient ?? "-"}`;
    });

  test("with and without a phone number in alternate webhooks: one conversation, replies to the BSUID", async () => {
    const jo = new Shopper({ waId: phone(), userId: bsuid() });
    const say = async (text: string) => {
      jo.hidePhone = !jo.hidePhone;
      await jo.say(text);
    };
    const tap = async (id: string) => {
      jo.hidePhone = !jo.hidePhone;
      await jo.tap(id);
    };
    await say("I want a gift");
    await jo.next();
    await say("Rosa");
    const [themes] = await jo.next();
    await tap(themes?.ids.find((id) => id.endsWith(":birthday")) ?? "");
    const [styles] = await jo.next();
    await tap(styles?.ids.find((id) => id.endsWith(":watercolor")) ?? "");
    const [confirm] = await jo.next();
    await tap(confirm?.ids[0] ?? "");
    await jo.next();
    const [, , , list] = await jo.next(4);
    await tap(list?.ids[0] ?? "");
    await jo.giveAddress();
    await jo.next(2);
    const [order] = ordersOf(jo);
    assert.ok(order, "one order, under the BSUID's conversation");
    await world.paymentEvent(order.orderId, jo.conversationId, { $case: "succeeded", value: {} });
    assert.match((await jo.next())[0]?.text ?? "", /Payment received/);

    assert.equal(jo.conversationId, `PNJ:${jo.userId}`);
    assert.equal(await conversations().countDocuments({ _id: jo.conversationId }), 1);
    assert.equal(await conversations().countDocuments({ _id: `PNJ:${jo.waId}` }), 0);
    assert.equal(requestsOf(jo).length, 1);
    // Every reply names the shopper by BSUID alone, phone number known or not.
    assert.deepEqual([...new Set(addressing(jo))], [`-|${jo.userId}`]);
    // 12 before the address step, and its six prompts.
    assert.equal(addressing(jo).length, 18);
  });

  test("a number change is followed: the new identity's messages continue the same conversation", async () => {
    const ka = new Shopper({ waId: phone(), userId: bsuid() });
    const first = ka.conversationId;
    await ka.say("hello");
    await ka.next();
    await ka.say("Kai");
    const [themes] = await ka.next();
    // Meta: a system message from the old identity, with the new number and (here) the new BSUID.
    const [newPhone, newUser] = [phone(), bsuid()];
    await ka.changeNumber(newPhone, newUser);
    await ka.quiet(800);
    assert.notEqual(ka.conversationId, first, "the new identity's webhooks come under another key");
    await ka.tap(themes?.ids.find((id) => id.endsWith(":love")) ?? "");
    const [styles] = await ka.next();
    assert.match(styles?.text ?? "", /Now pick a style/);
    assert.equal(addressing(ka).at(-1), `-|${newUser}`, "replies go to the new BSUID");
    assert.equal(await conversations().countDocuments({ _id: ka.conversationId }), 0, "no second one");

    // The notice without the new BSUID: the shopper's next webhooks bring one nobody announced,
    // with the new number, which the notice did name.
    const lu = new Shopper({ waId: phone(), userId: bsuid() });
    await lu.say("hello");
    await lu.next();
    await lu.say("Lu");
    const [luThemes] = await lu.next();
    const luPhone = phone();
    await lu.changeNumber(luPhone);
    const moved = new Shopper({ waId: luPhone, userId: bsuid() });
    await moved.tap(luThemes?.ids.find((id) => id.endsWith(":love")) ?? "");
    const [luStyles] = await moved.next();
    assert.match(luStyles?.text ?? "", /Now pick a style/);
    assert.equal(addressing(moved).at(-1), `-|${moved.userId}`);
  });
});

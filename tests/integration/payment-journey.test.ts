import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { createKafka, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import { LocalProvider } from "@taituri/payment-service/local-provider";
import type { RunningService } from "@taituri/service";
import { eventually, type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import type { Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";
import { Shopper as BaseShopper } from "./support/shopper.ts";
import { PAYMENT_LOCAL_SECRET, type Stack, startStack } from "./support/stack.ts";
import { FakeWorld } from "./support/world.ts";

/**
 * Whole journeys that end in a real payment: signed webhooks into ingress, the conversation, the
 * dispatcher and a fake Graph API, as in journey.test.ts, but with the real payment service and
 * its local provider. Only generation is answered by FakeWorld. The shopper's browser is plain
 * HTTP: it opens the checkout link the bot sent and presses the page's buttons.
 */
const SECRET = "payment-journey-secret";
const run = runId();
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
  kafka = createKafka({ ...infra.kafka.client, clientId: "world", logger });
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
const phone = () => {
  shoppers += 1;
  return `3461${run.replace(/\D/g, "0").slice(0, 4)}${String(shoppers).padStart(3, "0")}`;
};
const bsuid = () => `US.${BigInt(`0x${randomUUID().replaceAll("-", "").slice(0, 15)}`)}`;
/** Every shopper of this file: the privacy check reads everything sent to any of them. */
const everyone: Shopper[] = [];

class Shopper extends BaseShopper {
  constructor(ids: { waId?: string; userId?: string } = { waId: phone() }) {
    super({
      ...ids,
      phoneNumberId: "PNQ",
      webhook: () => stack.ingress.endpoints.webhook ?? "",
      secret: SECRET,
      graph,
      wamidPrefix: run,
    });
    everyone.push(this);
  }

  /** From hello to the checkout link for design `n` (1-based); returns the CTA. */
  async toCheckout(n = 1) {
    const list = await this.toList();
    await this.tap(list?.ids[n - 1] ?? "");
    await this.giveAddress();
    assert.match((await this.next())[0]?.text ?? "", /Preparing your checkout/);
    const [pay] = await this.next();
    assert.equal(pay?.type, "cta_url");
    return pay;
  }

  /** From hello to the list of designs; returns that list. */
  async toList() {
    const shown = await this.toDesigns();
    assert.equal(shown[3]?.type, "list");
    return shown[3];
  }
}

interface Order {
  _id: string;
  number: string;
  state: string;
  conversationId: string;
  imageId: string;
  amount: number;
  createdAt: Date;
}
const orders = () => db.collection<Order>("payment_orders");

/**
 * A provider that lets a closed checkout complete all the same (a race at Stripe between our
 * expiry and the shopper's "Pay"): the signed `checkout.session.completed` it would send.
 */
async function completedAnyway(session: { id: string; orderNumber: string }): Promise<Response> {
  const provider = new LocalProvider({
    secret: PAYMENT_LOCAL_SECRET,
    publicUrl: payments.endpoints.http ?? "",
    toleranceSeconds: 300,
  });
  const { body, signature } = provider.signedEvent("checkout.session.completed", session);
  return fetch(`${payments.endpoints.http}/payments/webhooks/local`, {
    method: "POST",
    headers: { "content-type": "application/json", "taituri-signature": signature },
    body,
  });
}

/** The checkout session id at the end of a local checkout link. */
const sessionOf = (url: string | undefined) => new URL(url ?? "").pathname.split("/").pop() ?? "";

describe("journeys paid through the local checkout", () => {
  test("from hello to paid: the checkout page shows the design, Pay confirms in WhatsApp", async () => {
    const ana = new Shopper();
    const list = await ana.toList();
    await ana.tap(list?.ids[1] ?? "");
    await ana.giveAddress();
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
    assert.match(order.number, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    assert.match(
      confirmation?.text ?? "",
      new RegExp(`Payment received.*Your order number is ${order.number}\\.`),
    );
    const after = await orders().findOne({ _id: order._id });
    assert.equal(after?.state, "paid");
    assert.equal(after?.amount, 1990);
  });

  test("a cancelled checkout: the shopper chooses again, gets a new link, pays once", async () => {
    const bo = new Shopper();
    const list = await bo.toList();
    await bo.tap(list?.ids[0] ?? "");
    await bo.giveAddress();
    await bo.next();
    const [first] = await bo.next();
    await fetch(`${first?.url}/cancel`, { method: "POST" });
    const [expired, again] = await bo.next(2);
    assert.match(expired?.text ?? "", /checkout link expired/);
    assert.equal(again?.type, "list");
    // The same design again: the delivery given for the first order is shown to confirm, then a new
    // order, session and link (the expired one stays expired).
    await bo.tap(again?.ids[0] ?? "");
    const [check] = await bo.next();
    assert.match(check?.text ?? "", /Please check where the gift goes:[\s\S]*Calle Mayor 1/);
    await bo.tap(check?.ids.find((id) => id.endsWith(":ok")) ?? "");
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
    const all = await orders().find({ conversationId: bo.conversationId }).sort({ createdAt: 1 }).toArray();
    assert.deepEqual(
      all.map((o) => o.state),
      ["expired", "paid"],
    );
  });

  test("cancel, then pay the old link: refused; a payment that lands all the same is refunded, and said", async () => {
    const cy = new Shopper();
    const pay = await cy.toCheckout();
    await cy.say("cancel");
    assert.match((await cy.next())[0]?.text ?? "", /order is cancelled and its payment link no longer works/);
    const order = await eventually("the order cancelled", async () => {
      const o = await orders().findOne({ conversationId: cy.conversationId });
      return o?.state === "cancelled" && o;
    });
    const refused = await fetch(`${pay?.url}/pay`, { method: "POST" });
    assert.equal(refused.status, 409, "the old link is closed");
    await cy.quiet(500);

    // A provider whose checkout completed all the same: the money goes back, and the shopper hears.
    assert.equal((await completedAnyway({ id: sessionOf(pay?.url), orderNumber: order.number })).status, 200);
    const [refund] = await cy.next();
    assert.equal(
      refund?.text,
      `You cancelled order ${order.number} before paying, so your payment of €19.90 has been refunded.`,
    );
    await eventually(
      "the order refunded",
      async () => (await orders().findOne({ _id: order._id }))?.state === "refunded",
    );
    // Delivered again: refunded once, said once.
    await completedAnyway({ id: sessionOf(pay?.url), orderNumber: order.number });
    await cy.quiet();
  });

  test("restart, then pay the old link: the order is confirmed and the new journey goes on", async () => {
    const di = new Shopper();
    const pay = await di.toCheckout(2);
    await di.say("restart");
    assert.match((await di.next())[0]?.text ?? "", /Who is this gift for/);
    const paid = await fetch(`${pay?.url}/pay`, { method: "POST" });
    assert.equal(paid.status, 200);
    const order = await orders().findOne({ conversationId: di.conversationId });
    assert.ok(order);
    assert.equal((await di.next())[0]?.text, `Payment received for order ${order.number}, thank you! 🎉`);
    assert.equal((await orders().findOne({ _id: order._id }))?.state, "paid");
    await di.say("Leo");
    assert.match((await di.next())[0]?.text ?? "", /A gift for Leo/);
  });

  test("another design while a link is open replaces the order; the first link no longer pays", async () => {
    const ev = new Shopper();
    const first = await ev.toCheckout(1);
    // The designs' list (the address step's lists came after it); the delivery confirmed for the
    // first order goes with the second, without asking again.
    const list = ev.all().findLast((m) => m.type === "list" && m.ids[0]?.startsWith("pick:"));
    await ev.tap(list?.ids[2] ?? "");
    assert.match((await ev.next())[0]?.text ?? "", /Preparing your checkout/);
    const [second] = await ev.next();
    assert.match(second?.text ?? "", /design 3/);
    assert.notEqual(second?.url, first?.url);
    await eventually("the first order cancelled", async () => {
      const o = await orders().findOne({ conversationId: ev.conversationId, state: "cancelled" });
      return o !== null;
    });
    assert.equal((await fetch(`${first?.url}/pay`, { method: "POST" })).status, 409);
    await fetch(`${second?.url}/pay`, { method: "POST" });
    assert.match((await ev.next())[0]?.text ?? "", /Payment received, thank you/);
  });

  test("a shopper known only by BSUID: from hello to paid, every reply by `recipient`, never `to`", async () => {
    const fu = new Shopper({ userId: bsuid() });
    const pay = await fu.toCheckout();
    await fetch(`${pay?.url}/pay`, { method: "POST" });
    const order = await orders().findOne({ conversationId: fu.conversationId });
    assert.ok(order);
    assert.equal(order._id.startsWith(`PNQ:${fu.userId}/`), true);
    assert.match((await fu.next())[0]?.text ?? "", new RegExp(`Your order number is ${order.number}\\.`));
    const requests = fu.requests();
    // 12, and the address step's six prompts.
    assert.equal(requests.length, 18);
    for (const r of requests) {
      const body = r.body as Record<string, unknown>;
      assert.equal(body.recipient, fu.userId);
      assert.equal("to" in body, false, JSON.stringify(body));
    }
  });

  test("nothing sent to a shopper names a phone number, a BSUID or a conversation id, but its recipient", async () => {
    const secrets = everyone.flatMap((s) => [s.waId, s.userId].filter(Boolean));
    assert.ok(secrets.length >= everyone.length);
    let read = 0;
    for (const r of graph.requests) {
      const { to: _to, recipient: _recipient, ...rest } = (r.body ?? {}) as Record<string, unknown>;
      const text = `${r.path} ${JSON.stringify(rest)}`;
      for (const secret of secrets) assert.ok(!text.includes(secret), `${secret} in ${text}`);
      read += 1;
    }
    assert.ok(read >= everyone.length * 10, `read ${read} requests for ${everyone.length} shoppers`);
  });
});

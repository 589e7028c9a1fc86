import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import {
  createKafka,
  EventProducer,
  encodeRecord,
  Records,
  type TopicNames,
  topicNames,
} from "@taituri/kafka";
import { ImageStore } from "@taituri/mongo";
import { loadPaymentConfig } from "@taituri/payment-service/config";
import { startPaymentService } from "@taituri/payment-service/service";
import type { fulfilment, payment } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { eventually, runId } from "@taituri/testing/harness";
import { type Db, MongoClient } from "mongodb";
import { LOCAL_SECRET, logger, paymentRequest } from "./payment-harness.ts";
import { ShopEndpoint } from "./support/shop.ts";
import { assertRefusesTampering, type ShopVerifier, shopVerifier } from "./support/shop-verifier.ts";

/**
 * The fulfilment deliverer on the real servers (Kafka, FerretDB, a payment service, two shops'
 * endpoints as node:http servers): paid orders reach their shops through an outage of their
 * endpoints (refused connections, then 503s), each acknowledged exactly once, signed so that the
 * verification snippet of docs/orders.md accepts them; the shop's signed "shipped" call moves a paid order.
 */
const DEFAULT_SECRET = "default-shop-secret-0123456789abcdef0123";
const SHOP_B_SECRET = "shop-b-secret-0123456789abcdef0123456789";
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

let infra: Infra;
let mongo: MongoClient;
let db: Db;
let producer: EventProducer;
let kafka: ReturnType<typeof createKafka>;
let service: RunningService;
let url = "";
let topics: TopicNames;
let dir = "";
let demoShop: ShopEndpoint;
let shopB: ShopEndpoint;
let verify: ShopVerifier;

/** What a shop sends: its body signed as Taituri signs (Stripe's scheme), with its own secret. */
const shopSignature = (body: string, secret: string, t = Math.floor(Date.now() / 1000)) =>
  `t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`;

const orderNumber = () => {
  const symbols = [...randomBytes(8)].map((b) => CROCKFORD[b % 32]).join("");
  return `${symbols.slice(0, 4)}-${symbols.slice(4)}`;
};

/** One sample of the payment service's /metrics, on its ops port (0 when absent). */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text
    .split("\n")
    .find(
      (l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && wanted.every((w) => l.includes(w)),
    );
  return line ? Number(line.split(" ").pop()) : 0;
}

before(async () => {
  const run = runId();
  infra = await startInfra();
  mongo = new MongoClient(infra.mongo.url);
  const dbName = `fulfilment_${run}`;
  db = mongo.db(dbName);
  // The test plays the conversation service (payment requests) and the payment service (a
  // duplicate OrderPaid): the broker's super user, not a service's login.
  kafka = createKafka({ ...infra.kafka.client, clientId: `fulfilment-it-${run}`, logger });
  producer = new EventProducer(kafka);
  await producer.connect();
  dir = await mkdtemp(join(tmpdir(), "fulfilment-it-"));
  verify = await shopVerifier();
  demoShop = await ShopEndpoint.start();
  shopB = await ShopEndpoint.start();

  // The payment service's own reading of the catalog: what it charges, where shops deliver, and
  // shop-b's endpoint (demo-shop has none: ORDERS_WEBHOOK_URL is its endpoint).
  const catalog = join(dir, "catalog.yaml");
  await writeFile(
    catalog,
    `shops:
  - id: demo-shop
    language: en
    currency: EUR
    product: { id: mug-11oz, name: { en: ceramic mug }, price: 1990 }
    delivery:
      countries: [ES]
      pickup: [{ id: centro, name: { en: Centre shop }, address: "Calle Mayor 1, 28013 Madrid" }]
  - id: shop-b
    language: es
    currency: EUR
    product: { id: tote, name: { es: bolsa }, price: 1500 }
    delivery: { countries: [ES] }
    fulfilment: { url: "${shopB.url}" }
`,
  );
  const secrets = join(dir, "secrets.json");
  await writeFile(secrets, JSON.stringify({ "shop-b": SHOP_B_SECRET }));
  const prefix = `fulfilment-${run}.`;
  topics = topicNames(prefix);
  await infra.kafka.authorize(prefix);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  service = await startPaymentService(
    loadPaymentConfig({
      ...infra.kafka.settings("payment"),
      MONGO_URL: infra.mongo.url,
      MONGO_DB: dbName,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_PARTITIONS: "2",
      PAYMENT_PORT: String(port),
      PAYMENT_OPS_PORT: "0",
      PAYMENT_PUBLIC_URL: url,
      PAYMENT_CATALOG_FILE: catalog,
      PAYMENT_LOCAL_WEBHOOK_SECRET: LOCAL_SECRET,
      PAYMENT_SWEEP_MS: "200",
      ORDERS_WEBHOOK_URL: demoShop.url,
      ORDERS_WEBHOOK_SECRET: DEFAULT_SECRET,
      ORDERS_WEBHOOK_SECRETS_FILE: secrets,
      // Fast, so that an outage of a few seconds costs each order several attempts.
      ORDERS_WEBHOOK_TIMEOUT_MS: "1000",
      ORDERS_RETRY_BASE_MS: "200",
      ORDERS_RETRY_MAX_MS: "1000",
      ORDERS_POLL_MS: "100",
    }),
    logger,
  );
});

after(async () => {
  await service?.stop();
  await producer?.disconnect();
  await mongo?.close();
  await demoShop?.close().catch(() => {});
  await shopB?.close().catch(() => {});
  await infra?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** An OrderPaid as the payment service publishes it (keyed by order number). */
function orderPaid(number: string, shopId: string, delivery: payment.Delivery): fulfilment.OrderPaid {
  return {
    eventId: `order.paid:${number}`,
    orderNumber: number,
    shopId,
    productId: shopId === "shop-b" ? "tote" : "mug-11oz",
    productName: shopId === "shop-b" ? "bolsa" : "ceramic mug",
    amount: shopId === "shop-b" ? 1500 : 1990,
    currency: "EUR",
    imageId: `image-${number}`,
    recipient: "Lucía",
    delivery,
    paidAt: new Date(),
  };
}

const publish = (order: fulfilment.OrderPaid) =>
  producer.send(topics.orders, [{ key: order.orderNumber, ...encodeRecord(Records.orderPaid, order) }]);

const address: payment.Delivery = {
  method: {
    $case: "address",
    value: {
      name: "Ana Pérez",
      line1: "Calle Mayor 1",
      line2: "",
      city: "Madrid",
      postcode: "28013",
      country: "ES",
    },
  },
};
const pickup: payment.Delivery = {
  method: { $case: "pickup", value: { locationId: "centro", name: "Ana" } },
};

const buy = async (r: payment.PaymentRequest) =>
  producer.send(topics.paymentRequests, [
    { key: r.conversationId, ...encodeRecord(Records.paymentRequest, r) },
  ]);
const linked = async (orderId: string) =>
  eventually(`a checkout link for ${orderId}`, async () => {
    const doc = await db.collection("payment_orders").findOne({ _id: orderId as never });
    return doc?.state === "link_sent" && (doc as unknown as { number: string; session: { url: string } });
  });

/**
 * An order of `shopId` bought and paid through the payment service (a request on its topic, then
 * "Pay" on the local checkout page): its OrderPaid is the one the service writes when paid.
 */
async function paidOrder(
  shopId: string,
  delivery: payment.Delivery,
): Promise<{ eventId: string; shopId: string }> {
  const conversation = `PNF:1556${randomBytes(3).readUIntBE(0, 3)}`;
  const shopB = shopId === "shop-b";
  const request = {
    ...paymentRequest(conversation, 1),
    shopId,
    productId: shopB ? "tote" : "mug-11oz",
    amount: shopB ? 1500 : 1990,
    delivery,
    recipient: "Lucía",
  };
  await buy(request);
  const { number, session } = await linked(request.orderId);
  const paid = await fetch(`${session.url}/pay`, { method: "POST" });
  assert.equal(paid.status, 200);
  await paid.arrayBuffer();
  return { eventId: `order.paid:${number}`, shopId };
}

const bodyId = (raw: Buffer) => (JSON.parse(raw.toString("utf8")) as { id: string }).id;
const postsOf = (shop: ShopEndpoint, id: string) => shop.received.filter((r) => bodyId(r.body) === id);

describe("paid orders reach their shops", () => {
  test("through an outage (port closed, then 503): every order delivered once as 2xx, signed, with its stable id", async (t) => {
    await demoShop.close();
    await shopB.close();
    // Six orders of two shops, paid while their endpoints are down.
    const started = Date.now();
    const orders: { eventId: string; shopId: string }[] = [];
    for (const [shopId, delivery] of [
      ["demo-shop", address],
      ["demo-shop", pickup],
      ["demo-shop", address],
      ["shop-b", address],
      ["shop-b", address],
      ["shop-b", address],
    ] as const)
      orders.push(await paidOrder(shopId, delivery));
    const shopOf = (o: { shopId: string }) => (o.shopId === "shop-b" ? shopB : demoShop);
    const secretOf = (o: { shopId: string }) => (o.shopId === "shop-b" ? SHOP_B_SECRET : DEFAULT_SECRET);

    // Nobody listening: refused connections, each order tried and retried.
    const deliveries = db.collection("fulfilment_deliveries");
    await eventually(
      "three refused attempts of every order",
      async () =>
        (await deliveries.countDocuments({ attempts: { $gte: 3 }, state: "pending" })) === orders.length,
      30_000,
    );
    assert.ok(
      (await metric("fulfilment_delivery_attempts_total", { outcome: "network" })) >= 3 * orders.length,
    );
    assert.equal(await metric("fulfilment_deliveries_pending"), orders.length);
    assert.ok((await metric("fulfilment_oldest_pending_delivery_seconds")) > 0);

    // Back on the network, but failing.
    demoShop.status = 503;
    shopB.status = 503;
    await demoShop.listen();
    await shopB.listen();
    await eventually(
      "two 503s for every order",
      () => orders.every((o) => postsOf(shopOf(o), o.eventId).filter((p) => p.status === 503).length >= 2),
      30_000,
    );
    const failedBefore = await deliveries
      .find({ _id: { $in: orders.map((o) => o.eventId) } as never })
      .project<{ attempts: number }>({ attempts: 1 })
      .toArray();

    // The shops recover.
    demoShop.status = 200;
    shopB.status = 200;
    const back = Date.now();
    await eventually(
      "every order acknowledged",
      () => orders.every((o) => postsOf(shopOf(o), o.eventId).some((p) => p.status === 200)),
      30_000,
    );
    const deliveredIn = Date.now() - back;
    await eventually("pending back to 0", async () => (await metric("fulfilment_deliveries_pending")) === 0);
    // Longer than the longest retry wait: had anything been left to post, it would have been.
    await new Promise((resolve) => setTimeout(resolve, 1500));

    for (const o of orders) {
      const posts = postsOf(shopOf(o), o.eventId);
      assert.equal(posts.filter((p) => p.status === 200).length, 1, `${o.eventId} acknowledged exactly once`);
      assert.equal(posts.at(-1)?.status, 200, `${o.eventId}: nothing posted after its 2xx`);
      for (const p of posts) {
        assert.equal(p.headers["taituri-event-id"], o.eventId);
        assert.equal(verify(p.body, String(p.headers["taituri-signature"]), secretOf(o)), true);
        assert.equal(verify(p.body, String(p.headers["taituri-signature"]), `${secretOf(o)}x`), false);
      }
      // A captured delivery replayed after the tolerance, or changed by one byte, is refused.
      const acked = posts.at(-1);
      if (acked)
        assertRefusesTampering(
          verify,
          { body: acked.body, signature: String(acked.headers["taituri-signature"]) },
          secretOf(o),
        );
      const doc = await deliveries.findOne({ _id: o.eventId as never });
      assert.equal(doc?.state, "delivered");
      // Every attempt has its one outcome: the refused ones, then one per post the shop received.
      const outcomes = await db
        .collection("fulfilment_attempt_outcomes")
        .find({ deliveryId: o.eventId })
        .sort({ attempt: 1 })
        .toArray();
      assert.equal(outcomes.length, doc?.attempts);
      const refusedHere = outcomes.filter((x) => x.outcome === "network").length;
      assert.ok(refusedHere >= 3);
      assert.deepEqual(
        outcomes.slice(refusedHere).map((x) => x.status),
        posts.map((p) => p.status),
      );
    }
    // shop-b's orders never reach the demo shop.
    const demoIds = new Set(demoShop.received.map((r) => bodyId(r.body)));
    assert.ok(orders.filter((o) => o.shopId === "shop-b").every((o) => !demoIds.has(o.eventId)));

    // What the shop gets: the documented body.
    const pickedUp = orders[1] as { eventId: string; shopId: string };
    const first = shopOf(pickedUp)
      .acknowledged()
      .find((a) => a.json.id === pickedUp.eventId);
    assert.ok(first);
    const order = (first.json as { data: { order: Record<string, unknown> } }).data.order;
    assert.equal(`order.paid:${order.number}`, pickedUp.eventId);
    assert.deepEqual(order.delivery, {
      method: "pickup",
      location: { id: "centro", name: "Centre shop", address: "Calle Mayor 1, 28013 Madrid" },
      name: "Ana",
    });
    assert.deepEqual(order.price, { amount: 1990, currency: "EUR", formatted: "€19.90" });
    assert.match(
      String((order.design as { imageUrl: string }).imageUrl),
      /\/design\?expires=\d+&signature=[0-9a-f]{64}$/,
    );

    const delivered = await metric("fulfilment_delivery_attempts_total", { outcome: "delivered" });
    const refused = await metric("fulfilment_delivery_attempts_total", { outcome: "network" });
    const failing = await metric("fulfilment_delivery_attempts_total", { outcome: "http_5xx" });
    assert.ok(delivered >= orders.length);
    assert.ok(failing >= 2 * orders.length);
    assert.equal(await metric("fulfilment_oldest_pending_delivery_seconds"), 0);
    t.diagnostic(
      `${orders.length} orders: ${refused} refused + ${failing} 503 attempts; attempts per order before recovery ${failedBefore
        .map((d) => d.attempts)
        .join(
          ",",
        )}; all acknowledged ${deliveredIn} ms after the shops recovered (${Date.now() - started} ms in all)`,
    );

    // The payment service's sweeper may publish a record again, and Kafka may redeliver it: known, nothing posted.
    const before = demoShop.received.length;
    const again = orders[0] as { eventId: string };
    await publish(orderPaid(again.eventId.slice("order.paid:".length), "demo-shop", address));
    await eventually(
      "the duplicate counted",
      async () => (await metric("fulfilment_orders_received_total", { outcome: "duplicate" })) >= 1,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(demoShop.received.length, before);
  });
});

describe("a paid order through the local checkout, and the shop's shipped call", () => {
  test("the shop gets the order with a working design link, and marks it shipped with a signed call", async () => {
    const conversation = `PNF:1555${randomBytes(3).readUIntBE(0, 3)}`;
    const request = {
      ...paymentRequest(conversation, 1),
      delivery: address,
      recipient: "Lucía",
    };
    const image = Buffer.from(`design of ${request.orderId}`);
    await new ImageStore(db).put(request.imageId, {
      bytes: image,
      contentType: "image/png",
      filename: "d.png",
    });
    await buy(request);
    const { number, session } = await linked(request.orderId);
    const paid = await fetch(`${session.url}/pay`, { method: "POST" });
    assert.equal(paid.status, 200);
    await paid.arrayBuffer();

    // The payment put the order in its outbox for the shop; the deliverer posts it.
    const eventId = `order.paid:${number}`;
    const received = await eventually(
      "the paid order at the shop",
      () => demoShop.acknowledged().find((a) => a.json.id === eventId),
      30_000,
    );
    assert.equal(verify(received.raw, String(received.headers["taituri-signature"]), DEFAULT_SECRET), true);
    const order = (received.json as { data: { order: Record<string, unknown> } }).data.order;
    assert.equal(order.recipient, "Lucía");
    assert.doesNotMatch(received.raw.toString("utf8"), /PNF:|1555/);
    const link = (order.design as { imageUrl: string }).imageUrl;
    const design = await fetch(link);
    assert.equal(design.status, 200);
    assert.deepEqual(Buffer.from(await design.arrayBuffer()), image);
    const tampered = await fetch(
      link.replace(/signature=([0-9a-f])/, (_m, c: string) => `signature=${c === "0" ? "1" : "0"}`),
    );
    assert.equal(tampered.status, 403);
    assert.deepEqual(await tampered.json(), { error: "forbidden" });

    const ship = (n: string, body: string, signature = shopSignature(body, DEFAULT_SECRET)) =>
      fetch(`${url}/shop/orders/${n}/shipped`, {
        method: "POST",
        headers: { "content-type": "application/json", "taituri-signature": signature },
        body,
      });
    const body = JSON.stringify({ trackingUrl: "https://track.example/AB123" });

    const forged = await ship(number, body, shopSignature(body, SHOP_B_SECRET));
    assert.equal(forged.status, 401);
    assert.deepEqual(await forged.json(), { error: "invalid signature" });
    const unknown = await ship(orderNumber(), body);
    assert.equal(unknown.status, 401);
    assert.deepEqual(await unknown.json(), { error: "invalid signature" });

    const shipped = await ship(number.replace("-", "").toLowerCase(), body);
    assert.equal(shipped.status, 200);
    assert.deepEqual(await shipped.json(), { number, state: "shipped" });
    const doc = await db.collection("payment_orders").findOne({ _id: request.orderId as never });
    assert.equal(doc?.state, "shipped");
    assert.equal(doc?.trackingUrl, "https://track.example/AB123");
    const again = await ship(number, body);
    assert.equal(again.status, 200);
    assert.deepEqual(await again.json(), { number, state: "shipped" });

    // An order with a link but no payment cannot be shipped.
    const unpaid = { ...paymentRequest(conversation, 2), delivery: address, recipient: "Lucía" };
    await buy(unpaid);
    const open = await linked(unpaid.orderId);
    const early = await ship(open.number, "{}");
    assert.equal(early.status, 409);
    assert.equal(((await early.json()) as { state: string }).state, "link_sent");
  });
});

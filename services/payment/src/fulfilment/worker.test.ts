import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogger } from "@taituri/logging";
import { fulfilment } from "@taituri/proto";
import { Registry } from "prom-client";
import { createDesignUrls } from "./design-url.ts";
import type { Endpoints } from "./endpoints.ts";
import { createFulfilmentMetrics } from "./metrics.ts";
import type { PostResult, PostToShop } from "./shop-client.ts";
import { verifyBody } from "./signature.ts";
import type {
  AttemptClaim,
  AttemptOutcomeDoc,
  DeliveryDoc,
  DeliveryLedger,
  DeliveryUpdate,
} from "./store.ts";
import { createDeliveryWorker } from "./worker.ts";

const SECRET = "s".repeat(32);
const logger = createLogger({ service: "test", level: "silent" });

/** The store's unique `_id`s and conditional writes, in memory. */
class MemoryLedger implements DeliveryLedger {
  readonly deliveries = new Map<string, DeliveryDoc>();
  readonly claims = new Map<string, AttemptClaim>();
  readonly outcomes = new Map<string, AttemptOutcomeDoc>();

  async record(doc: DeliveryDoc) {
    if (this.deliveries.has(doc._id)) return "duplicate" as const;
    this.deliveries.set(doc._id, { ...doc });
    return "stored" as const;
  }
  async due(at: Date, limit: number) {
    return [...this.deliveries.values()]
      .filter((d) => d.state === "pending" && d.nextAttemptAt && d.nextAttemptAt <= at)
      .slice(0, limit)
      .map((d) => ({ ...d }));
  }
  async claim(claim: AttemptClaim) {
    const existing = this.claims.get(claim._id);
    if (existing) return existing;
    this.claims.set(claim._id, claim);
    return "claimed" as const;
  }
  async outcome(deliveryId: string, attempt: number) {
    return this.outcomes.get(`${deliveryId}#${attempt}`) ?? null;
  }
  async recordOutcome(outcome: AttemptOutcomeDoc) {
    const existing = this.outcomes.get(outcome._id);
    if (existing) return existing;
    this.outcomes.set(outcome._id, outcome);
    return "recorded" as const;
  }
  async apply(deliveryId: string, attempt: number, update: DeliveryUpdate) {
    const d = this.deliveries.get(deliveryId);
    if (d && d.attempts === attempt - 1) this.deliveries.set(deliveryId, { ...d, ...update });
  }
}

const record = (number: string) =>
  Buffer.from(
    fulfilment.OrderPaid.encode(
      fulfilment.OrderPaid.fromPartial({
        eventId: `order.paid:${number}`,
        orderNumber: number,
        shopId: "demo-shop",
        productId: "mug",
        productName: "mug",
        amount: 1990,
        currency: "EUR",
        imageId: "img",
        recipient: "Ana",
        paidAt: new Date("2026-03-01T00:00:00Z"),
      }),
    ).finish(),
  );

const delivery = (number: string, at: Date, over: Partial<DeliveryDoc> = {}): DeliveryDoc => ({
  _id: `order.paid:${number}`,
  orderNumber: number,
  shopId: "demo-shop",
  record: record(number),
  state: "pending",
  attempts: 0,
  nextAttemptAt: at,
  createdAt: at,
  ...over,
});

/** A worker on a fake clock and a scripted shop: each post takes the next answer. */
function setup(answers: PostResult[], endpoints?: Endpoints, pollMs = 5) {
  let clock = new Date("2026-03-01T00:00:00Z");
  const ledger = new MemoryLedger();
  const posts: { url: string; body: string; headers: Record<string, string> }[] = [];
  const post: PostToShop = async (url, body, headers) => {
    posts.push({ url, body, headers });
    return answers.shift() ?? { outcome: "delivered", status: 200 };
  };
  const registry = new Registry();
  const metrics = createFulfilmentMetrics(registry, async () => ({ count: 0, oldest: null }));
  const worker = createDeliveryWorker({
    ledger,
    endpoints: endpoints ?? {
      forShop: () => ({ url: "https://shop.example/orders", secrets: [SECRET], from: "default" }),
    },
    shop: () => ({ language: "en" }),
    designs: createDesignUrls({ secret: SECRET, ttlSeconds: 3600, publicUrl: () => "https://pay.example" }),
    post,
    metrics,
    logger,
    settings: { timeoutMs: 1000, retryBaseMs: 10_000, retryMaxMs: 60_000, pollMs },
    replica: "me",
    now: () => clock,
    random: () => 0.5,
  });
  const count = async (outcome: string) =>
    (await registry.getSingleMetric("fulfilment_delivery_attempts_total")?.get())?.values.find(
      (v) => v.labels.outcome === outcome,
    )?.value ?? 0;
  return {
    ledger,
    posts,
    worker,
    count,
    get now() {
      return clock;
    },
    advance(ms: number) {
      clock = new Date(clock.getTime() + ms);
    },
  };
}

const until = async (what: string, probe: () => boolean) => {
  for (let i = 0; i < 400 && !probe(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(probe(), what);
};

describe("the delivery worker", () => {
  test("retries with backoff after failures, then delivers once; each post signed, with the stable event id", async () => {
    const w = setup([{ outcome: "network" }, { outcome: "http_5xx", status: 503 }]);
    await w.ledger.record(delivery("7KQ2-M9XD", w.now));
    w.worker.start();
    try {
      await until("first attempt", () => w.ledger.deliveries.get("order.paid:7KQ2-M9XD")?.attempts === 1);
      let d = w.ledger.deliveries.get("order.paid:7KQ2-M9XD");
      // Failed attempt 1: up to the base (10 s), drawn at 0.5.
      assert.equal(d?.nextAttemptAt?.getTime(), w.now.getTime() + 5000);
      assert.equal(d?.lastOutcome, "network");
      w.advance(5000);
      await until("second attempt", () => w.ledger.deliveries.get("order.paid:7KQ2-M9XD")?.attempts === 2);
      d = w.ledger.deliveries.get("order.paid:7KQ2-M9XD");
      // Failed attempt 2: up to 20 s.
      assert.equal(d?.nextAttemptAt?.getTime(), w.now.getTime() + 10_000);
      assert.equal(d?.lastStatus, 503);
      w.advance(10_000);
      await until("delivered", () => w.ledger.deliveries.get("order.paid:7KQ2-M9XD")?.state === "delivered");
      d = w.ledger.deliveries.get("order.paid:7KQ2-M9XD");
      assert.equal(d?.attempts, 3);
      assert.equal(d?.nextAttemptAt, null);
      assert.equal(w.posts.length, 3);
      for (const p of w.posts) {
        assert.equal(p.headers["Taituri-Event-Id"], "order.paid:7KQ2-M9XD");
        assert.equal(JSON.parse(p.body).id, "order.paid:7KQ2-M9XD");
        assert.ok(verifyBody(Buffer.from(p.body), p.headers["Taituri-Signature"], [SECRET], w.now));
      }
      assert.deepEqual(
        [...w.ledger.outcomes.values()].map((o) => o.outcome),
        ["network", "http_5xx", "delivered"],
      );
      assert.equal(await w.count("network"), 1);
      assert.equal(await w.count("http_5xx"), 1);
      assert.equal(await w.count("delivered"), 1);
      // Delivered: nothing more is posted however long we wait.
      w.advance(3_600_000);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(w.posts.length, 3);
    } finally {
      await w.worker.stop();
    }
  });

  test("a wake starts the first attempt at once, not at the next poll", async () => {
    // A poll of a minute: only the wake can explain a prompt attempt.
    const w = setup([], undefined, 60_000);
    w.worker.start();
    await new Promise((r) => setTimeout(r, 20));
    await w.ledger.record(delivery("AAAA-BBBB", w.now));
    w.worker.wake();
    try {
      await until("delivered", () => w.ledger.deliveries.get("order.paid:AAAA-BBBB")?.state === "delivered");
    } finally {
      await w.worker.stop();
    }
  });

  test("an attempt another replica claimed is left alone within its lease", async () => {
    const w = setup([]);
    await w.ledger.record(delivery("CCCC-DDDD", w.now));
    await w.ledger.claim({
      _id: "order.paid:CCCC-DDDD#1",
      deliveryId: "order.paid:CCCC-DDDD",
      attempt: 1,
      claimedAt: w.now,
      by: "other",
    });
    w.worker.start();
    await new Promise((r) => setTimeout(r, 60));
    await w.worker.stop();
    assert.equal(w.posts.length, 0);
    assert.equal(w.ledger.deliveries.get("order.paid:CCCC-DDDD")?.attempts, 0);
  });

  test("a claim past its lease without an outcome: the claimer died, the attempt counts as failed", async () => {
    const w = setup([]);
    await w.ledger.record(delivery("EEEE-FFFF", w.now));
    await w.ledger.claim({
      _id: "order.paid:EEEE-FFFF#1",
      deliveryId: "order.paid:EEEE-FFFF",
      attempt: 1,
      claimedAt: w.now,
      by: "dead",
    });
    w.advance(2001);
    w.worker.start();
    try {
      await until("written off", () => w.ledger.deliveries.get("order.paid:EEEE-FFFF")?.attempts === 1);
      assert.equal(w.ledger.deliveries.get("order.paid:EEEE-FFFF")?.lastOutcome, "abandoned");
      assert.equal(await w.count("abandoned"), 1);
      w.advance(5000);
      await until(
        "delivered by attempt 2",
        () => w.ledger.deliveries.get("order.paid:EEEE-FFFF")?.state === "delivered",
      );
      assert.equal(w.ledger.deliveries.get("order.paid:EEEE-FFFF")?.attempts, 2);
      assert.equal(w.posts.length, 1);
    } finally {
      await w.worker.stop();
    }
  });

  test("an outcome recorded by a replica that died before writing the delivery is written, not posted again", async () => {
    const w = setup([]);
    await w.ledger.record(delivery("GGGG-HHHH", w.now));
    await w.ledger.claim({
      _id: "order.paid:GGGG-HHHH#1",
      deliveryId: "order.paid:GGGG-HHHH",
      attempt: 1,
      claimedAt: w.now,
      by: "crashed",
    });
    await w.ledger.recordOutcome({
      _id: "order.paid:GGGG-HHHH#1",
      deliveryId: "order.paid:GGGG-HHHH",
      attempt: 1,
      outcome: "delivered",
      status: 200,
      at: w.now,
      update: { state: "delivered", attempts: 1, nextAttemptAt: null, deliveredAt: w.now },
    });
    w.worker.start();
    try {
      await until("delivered", () => w.ledger.deliveries.get("order.paid:GGGG-HHHH")?.state === "delivered");
      assert.equal(w.posts.length, 0);
    } finally {
      await w.worker.stop();
    }
  });

  test("a shop whose endpoint went away: the delivery is left for the orders CLI", async () => {
    const w = setup([], { forShop: () => undefined });
    await w.ledger.record(delivery("JJJJ-KKKK", w.now));
    w.worker.start();
    try {
      await until(
        "no endpoint",
        () => w.ledger.deliveries.get("order.paid:JJJJ-KKKK")?.state === "no_endpoint",
      );
      assert.equal(w.posts.length, 0);
      assert.equal(w.ledger.outcomes.get("order.paid:JJJJ-KKKK#1")?.outcome, "no_endpoint");
    } finally {
      await w.worker.stop();
    }
  });
});

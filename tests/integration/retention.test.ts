import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { CACHE_EPOCHS, CacheForgetWatcher } from "@taituri/conversation-service/cache-epochs";
import {
  type ConversationDoc,
  ConversationStore,
  conversationIndexes,
  VERSIONS,
} from "@taituri/conversation-service/store";
import { type Infra, startInfra } from "@taituri/devenv";
import {
  CALLS,
  generationIndexes,
  IMAGES_FILES,
  MARKERS,
  ROUNDS,
  RoundStore,
} from "@taituri/generation-service/store";
import {
  ATTEMPTS,
  IngressStore,
  ingressIndexes,
  SENDS,
  SENT,
  STATUSES,
} from "@taituri/ingress-service/store";
import { ensureIndexes, ImageStore, type OutboxEntry } from "@taituri/mongo";
import {
  DELIVERIES,
  ATTEMPTS as DELIVERY_ATTEMPTS,
  DeliveryStore,
  fulfilmentIndexes,
  OUTCOMES,
} from "@taituri/payment-service/fulfilment-store";
import {
  CHANGES,
  ORDERS,
  type OrderDoc,
  type OrderPatch,
  PaymentStore,
  PROVIDER_EVENTS,
  paymentIndexes,
  SESSIONS,
} from "@taituri/payment-service/store";
import { type Db, MongoClient } from "mongodb";
import { asText } from "./support/stored.ts";

/**
 * The retention sweeps on the real MongoDB-wire server. Generation: rounds, their markers and
 * their designs (GridFS files and chunks) older than the cutoff go; a recent round's stay, and so
 * does the cost ledger. Ingress: outbound claims, take-over attempts, sent records and delivery
 * statuses older than the cutoff go; recent ones stay. Payment: orders that ended before the
 * cutoff are forgotten (never paid: deleted with everything of them; paid: a tombstone without
 * personal data), the others stay as they were; deliveries the shop accepted before it go.
 * Conversation (the sweep itself: tests/integration/conversation-store.test.ts): a sweep that
 * deleted any tells the replicas, which drop what they keep in memory of them.
 */
let infra: Infra;
let mongo: MongoClient;
let db: Db;

before(async () => {
  infra = await startInfra();
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(`retention_${randomUUID().slice(0, 8)}`);
  await ensureIndexes(db, [
    ...generationIndexes,
    ...ingressIndexes,
    ...paymentIndexes,
    ...fulfilmentIndexes,
    ...conversationIndexes,
  ]);
});

after(async () => {
  await mongo?.close();
  await infra?.stop();
});

describe("generation", () => {
  const png = { bytes: Buffer.alloc(300_000, 7), contentType: "image/png", filename: "d1.png" };

  async function roundAt(store: RoundStore, images: ImageStore, conversationId: string, at: Date) {
    const roundId = `${conversationId}/j1/r1`;
    const claim = await store.claim(
      { roundId, conversationId, shopId: "shop", shopperId: "shopper" },
      "worker",
      at,
      60_000,
      2,
    );
    assert.equal(claim.kind, "claimed");
    await store.callStarted({
      _id: `${roundId}#1.1`,
      roundId,
      shopId: "shop",
      attempt: 1,
      provider: "local",
      model: "svg",
      size: "512x512",
      quality: "n/a",
      images: 1,
      estimatedCents: 0,
      startedAt: at,
    });
    const imageId = `${roundId}/a1/d1`;
    await images.put(imageId, png);
    // GridFS dates an upload itself: age it as if it had been stored with the round.
    await db.collection(IMAGES_FILES).updateOne({ _id: imageId as never }, { $set: { uploadDate: at } });
    assert.equal(await store.finish(roundId, "completed", new Uint8Array([1, 2, 3]), at), true);
    return { roundId, imageId };
  }

  test("the retention sweep deletes rounds, markers and designs from before the cutoff; recent ones and the ledger stay", async () => {
    const store = new RoundStore(db);
    const images = new ImageStore(db);
    const old = new Date("1999-06-01T00:00:00Z");
    const cutoff = new Date("2000-01-01T00:00:00Z");
    const recent = new Date(Date.now() - 3 * 24 * 3600 * 1000);
    const gone = await roundAt(store, images, `c-gone-${randomUUID()}`, old);
    // A recent round: its design may still be behind a live design link of a paid order.
    const kept = await roundAt(store, images, `c-kept-${randomUUID()}`, recent);
    const goneFile = await db.collection(IMAGES_FILES).findOne({ _id: gone.imageId as never });
    assert.ok(goneFile, "the old design is stored");
    assert.ok(
      (await db.collection("images.chunks").countDocuments({ files_id: goneFile._id })) > 1,
      "in several chunks",
    );

    assert.deepEqual(await store.sweepExpired(images, cutoff, 100), {
      rounds: 1,
      markers: 1,
      images: 1,
      examined: 1,
    });
    assert.equal(await store.load(gone.roundId), null);
    assert.equal(await store.result(gone.roundId), undefined);
    assert.equal(await images.exists(gone.imageId), false);
    assert.equal(await db.collection("images.chunks").countDocuments({ files_id: goneFile._id }), 0);
    assert.equal((await store.callsOf(gone.roundId)).length, 1, "the cost ledger stays");

    assert.ok(await store.load(kept.roundId), "the recent round stays");
    assert.ok(await store.result(kept.roundId), "with its result");
    assert.deepEqual((await images.get(kept.imageId))?.bytes, png.bytes, "and its design");
    // Nothing older is left: a second sweep finds nothing.
    assert.deepEqual(await store.sweepExpired(images, cutoff, 100), {
      rounds: 0,
      markers: 0,
      images: 0,
      examined: 0,
    });
    assert.equal(await db.collection(ROUNDS).countDocuments({ _id: kept.roundId as never }), 1);
    assert.equal(await db.collection(MARKERS).countDocuments({ at: { $lt: cutoff } }), 0);
    assert.equal(await db.collection(CALLS).countDocuments({}), 2);
  });

  test("the sweep goes a batch at a time and says when a batch was full", async () => {
    const store = new RoundStore(db);
    const images = new ImageStore(db);
    const old = new Date("1998-06-01T00:00:00Z");
    const cutoff = new Date("1999-01-01T00:00:00Z");
    for (let i = 0; i < 3; i++) await roundAt(store, images, `c-batch-${i}-${randomUUID()}`, old);
    const first = await store.sweepExpired(images, cutoff, 2);
    assert.deepEqual(first, { rounds: 2, markers: 2, images: 2, examined: 2 });
    const second = await store.sweepExpired(images, cutoff, 2);
    assert.deepEqual(second, { rounds: 1, markers: 1, images: 1, examined: 1 });
  });
});

describe("ingress", () => {
  async function messageAt(store: IngressStore, conversationId: string, at: Date) {
    const outboundId = `${conversationId}/o1`;
    const wamid = `wamid.${randomUUID()}`;
    assert.equal(
      await store.insertClaim({
        _id: outboundId,
        conversationId,
        status: "sending",
        leaseUntil: at,
        attempts: 1,
        createdAt: at,
        updatedAt: at,
      }),
      "inserted",
    );
    assert.equal(await store.startAttempt(outboundId, 2, at), true);
    assert.equal(await store.recordSent({ _id: outboundId, wamid, conversationId, at }), "inserted");
    assert.equal(
      await store.applyStatus({
        _id: wamid,
        status: "delivered",
        rank: 2,
        at,
        conversationId,
        errors: [],
        updatedAt: at,
      }),
      "applied",
    );
    return { outboundId, wamid };
  }

  test("the retention sweep deletes outbound claims, attempts, sent records and statuses from before the cutoff; recent ones stay", async () => {
    const store = new IngressStore(db);
    const old = new Date("1999-06-01T00:00:00Z");
    const cutoff = new Date("2000-01-01T00:00:00Z");
    const recent = new Date("2000-02-01T00:00:00Z");
    const gone = await messageAt(store, `c-gone-${randomUUID()}`, old);
    const kept = await messageAt(store, `c-kept-${randomUUID()}`, recent);

    assert.deepEqual(await store.sweepExpired(cutoff, 100), {
      sends: 1,
      attempts: 1,
      sent: 1,
      statuses: 1,
      examined: 1,
    });
    assert.equal(await store.findClaim(gone.outboundId), null);
    assert.equal(await store.findSent(gone.outboundId), null);
    assert.equal(await store.findSentByWamid(gone.wamid), null);
    assert.equal(await db.collection(ATTEMPTS).countDocuments({ _id: `${gone.outboundId}#2` as never }), 0);
    assert.equal(await db.collection(STATUSES).countDocuments({ _id: gone.wamid as never }), 0);

    assert.ok(await store.findClaim(kept.outboundId), "the recent claim stays");
    assert.ok(await store.findSentByWamid(kept.wamid), "and its sent record");
    assert.equal(await db.collection(ATTEMPTS).countDocuments({ _id: `${kept.outboundId}#2` as never }), 1);
    assert.equal(await db.collection(STATUSES).countDocuments({ _id: kept.wamid as never }), 1);
    // Nothing older is left: a second sweep finds nothing.
    assert.deepEqual(await store.sweepExpired(cutoff, 100), {
      sends: 0,
      attempts: 0,
      sent: 0,
      statuses: 0,
      examined: 0,
    });
    for (const name of [SENDS, SENT]) assert.equal(await db.collection(name).countDocuments({}), 1);
  });

  test("the sweep goes a batch at a time and says when a batch was full", async () => {
    const store = new IngressStore(db);
    const old = new Date("1998-06-01T00:00:00Z");
    const cutoff = new Date("1999-01-01T00:00:00Z");
    for (let i = 0; i < 3; i++) await messageAt(store, `c-batch-${i}-${randomUUID()}`, old);
    assert.deepEqual(await store.sweepExpired(cutoff, 2), {
      sends: 2,
      attempts: 2,
      sent: 2,
      statuses: 2,
      examined: 2,
    });
    assert.deepEqual(await store.sweepExpired(cutoff, 2), {
      sends: 1,
      attempts: 1,
      sent: 1,
      statuses: 1,
      examined: 1,
    });
  });
});

describe("payment", () => {
  const PAYMENT_COLLECTIONS = [
    ORDERS,
    CHANGES,
    SESSIONS,
    PROVIDER_EVENTS,
    DELIVERIES,
    DELIVERY_ATTEMPTS,
    OUTCOMES,
  ];
  const STATES = [
    "created",
    "link_sent",
    "expired",
    "failed",
    "cancelled",
    "paid",
    "shipped",
    "refund_due",
    "refunded",
  ] as const;
  type State = (typeof STATES)[number];
  /** The walk to each state from `link_sent` (the last change is the one that enters it). */
  const WALKS: Record<State, State[]> = {
    created: [],
    link_sent: ["link_sent"],
    expired: ["link_sent", "expired"],
    failed: ["link_sent", "failed"],
    cancelled: ["link_sent", "cancelled"],
    paid: ["link_sent", "paid"],
    shipped: ["link_sent", "paid", "shipped"],
    refund_due: ["link_sent", "paid", "refund_due"],
    refunded: ["link_sent", "paid", "refund_due", "refunded"],
  };
  const digits = () => String(Math.floor(Math.random() * 1e9)).padStart(9, "0");

  /** A shopper's personal data, all of which an order of theirs holds somewhere. */
  function person(bsuid: boolean) {
    const tag = randomUUID().slice(0, 6);
    const phone = `4479${digits()}`;
    const id = bsuid ? `GB.${digits()}${digits()}` : phone;
    return {
      id,
      conversationId: `PNRET:${id}`,
      name: `Philippa ${tag}`,
      street: `Rua das Flores ${tag}`,
      city: `Vilarinho ${tag}`,
      postcode: `PC ${tag}`,
      recipient: `Aurelio ${tag}`,
    };
  }
  type Person = ReturnType<typeof person>;
  const secretsOf = (p: Person) => [p.id, p.name, p.street, p.city, p.postcode, p.recipient];

  /** An order in `state`, walked there through the store at `at`, with a session, events, outbox and a delivery if paid. */
  async function orderIn(store: PaymentStore, deliveries: DeliveryStore, state: State, at: Date, p: Person) {
    const orderId = `${p.conversationId}/o1`;
    let order = await store.create(
      {
        _id: orderId,
        conversationId: p.conversationId,
        shopId: "shop",
        productId: "mug",
        productName: "Mug",
        designId: `${p.conversationId}/j1/r1/a1/d1`,
        imageId: `${p.conversationId}/j1/r1/a1/d1`,
        amount: 1500,
        currency: "EUR",
        delivery: {
          method: "address",
          name: p.name,
          line1: p.street,
          city: p.city,
          postcode: p.postcode,
          country: "ES",
        },
        recipient: p.recipient,
        provider: "local",
      },
      at,
      () => `R${randomUUID().slice(0, 7).toUpperCase()}`,
    );
    const sessionId = `cs_${randomUUID()}`;
    // What the events for the conversation and the shop carry: the conversation id, the address.
    const outbox = (name: string): OutboxEntry[] => [
      {
        id: `${orderId}:${name}`,
        topic: "t.payment.events",
        key: p.conversationId,
        value: Buffer.from(`${p.recipient} ${p.street}`),
        headers: {},
      },
    ];
    const step = async (to: State, change: Parameters<PaymentStore["transition"]>[1], patch: OrderPatch) => {
      const next = await store.transition(order, change, patch, outbox(to), "test", at);
      assert.ok(next, `${order.state} → ${to}`);
      order = next;
    };
    const event = async (type: string) =>
      assert.equal(
        await store.claimEvent(
          {
            _id: `evt_${randomUUID()}`,
            provider: "local",
            type,
            sessionId,
            orderNumber: order.number,
            orderId,
          },
          at,
        ),
        "new",
      );
    for (const to of WALKS[state]) {
      if (to === "link_sent") {
        const session = {
          id: sessionId,
          url: `http://127.0.0.1/checkout/${sessionId}`,
          expiresAt: at,
          attempt: 1,
        };
        await store.recordSession(orderId, session, "local", at);
        await step(to, "open_session", { session, attempt: 1, openUntil: at, linkSentAt: at });
      } else if (to === "expired") {
        await event("checkout.session.expired");
        await step(to, "expire", { openUntil: null });
      } else if (to === "failed") {
        await event("checkout.session.async_payment_failed");
        await step(to, "fail", { openUntil: null, failureReason: "declined" });
      } else if (to === "cancelled") {
        await step(to, "cancel", {
          cancelReason: "shopper",
          cancelledAt: at,
          cancelledSessionId: sessionId,
          openUntil: null,
        });
      } else if (to === "paid") {
        await event("checkout.session.completed");
        await step(to, "pay", {
          paidSessionId: sessionId,
          paidAt: at,
          paymentRef: `pi_${randomUUID()}`,
          openUntil: null,
        });
        assert.equal(
          await deliveries.record({
            _id: `order.paid:${order.number}`,
            orderNumber: order.number,
            shopId: "shop",
            record: Buffer.from(`${p.recipient}\n${p.name}\n${p.street}\n${p.postcode} ${p.city}`),
            state: "pending",
            attempts: 0,
            nextAttemptAt: at,
            createdAt: at,
          }),
          "stored",
        );
      } else if (to === "shipped") {
        await step(to, "ship", {
          shippedAt: at,
          trackingUrl: `https://track.example/${encodeURIComponent(p.recipient)}`,
        });
      } else if (to === "refund_due") {
        await step(to, "refund", { refundReason: "by_shop", refundDueAt: at });
      } else if (to === "refunded") {
        await step(to, "complete_refund", { refundedAt: at, refundDueAt: null });
      }
    }
    assert.equal(order.state, state);
    return order;
  }

  /** Every document of the payment service's collections, as text, by collection. */
  async function paymentDocuments(): Promise<Map<string, string[]>> {
    const all = new Map<string, string[]>();
    for (const name of PAYMENT_COLLECTIONS)
      all.set(name, (await db.collection(name).find({}).sort({ _id: 1 }).toArray()).map(asText));
    return all;
  }
  const texts = (docs: Map<string, string[]>) => [...docs.values()].flat();
  const mentions = (text: string, words: string[]) => words.some((w) => text.includes(w));

  test("the retention sweep forgets the orders that ended before the cutoff: never paid deleted, paid as a tombstone; the rest stay", async () => {
    const store = new PaymentStore(db);
    const deliveries = new DeliveryStore(db);
    const old = new Date("1999-06-01T00:00:00Z");
    const cutoff = new Date("2000-01-01T00:00:00Z");
    const recent = new Date("2000-02-01T00:00:00Z");
    const made: { state: State; old: boolean; person: Person; order: OrderDoc }[] = [];
    for (const [i, state] of STATES.entries())
      for (const isOld of [true, false]) {
        const p = person(i % 2 === 0);
        made.push({
          state,
          old: isOld,
          person: p,
          order: await orderIn(store, deliveries, state, isOld ? old : recent, p),
        });
      }
    const ended = ["expired", "failed", "cancelled", "shipped", "refunded"];
    const forgotten = made.filter((m) => m.old && ended.includes(m.state));
    const kept = made.filter((m) => !forgotten.includes(m));
    const forgottenWords = forgotten.flatMap((m) => [...secretsOf(m.person), m.order.number]);
    const before = await paymentDocuments();
    for (const m of made)
      assert.ok(
        secretsOf(m.person).every((s) => texts(before).some((t) => t.includes(s))),
        `the ${m.state} order's personal data is stored`,
      );

    assert.deepEqual(await store.sweepExpired(cutoff, new Date(), 100), {
      deleted: 3,
      tombstoned: 2,
      examined: 5,
    });
    const after = await paymentDocuments();

    // Nothing of a forgotten order's shopper is left anywhere in the payment collections.
    for (const [name, docs] of after)
      for (const m of forgotten)
        assert.deepEqual(
          secretsOf(m.person).filter((s) => docs.some((t) => t.includes(s))),
          [],
          `nothing of the ${m.state} order's shopper left in ${name}`,
        );
    // Never paid: gone, with its changes, sessions and events. Paid: its tombstone, named by its number.
    for (const m of forgotten) {
      assert.equal(await db.collection(ORDERS).countDocuments({ _id: m.order._id as never }), 0);
      for (const name of [CHANGES, SESSIONS, PROVIDER_EVENTS])
        assert.equal(
          await db.collection(name).countDocuments({ orderId: m.order._id }),
          0,
          `${m.state} ${name}`,
        );
      assert.equal(await db.collection(DELIVERIES).countDocuments({ orderNumber: m.order.number }), 0);
      const stone = await db.collection(ORDERS).findOne({ _id: `erased:${m.order.number}` as never });
      if (m.state !== "shipped" && m.state !== "refunded") {
        assert.equal(stone, null, `no tombstone of a ${m.state} order`);
        continue;
      }
      assert.ok(stone, `the ${m.state} order's tombstone`);
      assert.equal(stone.number, m.order.number);
      assert.equal(stone.state, m.state);
      assert.equal(stone.amount, 1500);
      assert.equal(stone.currency, "EUR");
      assert.equal(stone.paymentRef, m.order.paymentRef);
      assert.equal(stone.paidSessionId, m.order.paidSessionId);
      assert.deepEqual(
        stone.history.map((h: { state: string }) => h.state),
        m.order.history.map((h) => h.state),
      );
      assert.deepEqual(stone.paidAt, old);
      assert.equal(stone.conversationId, "erased");
      for (const field of ["delivery", "recipient", "session", "trackingUrl", "pendingNumber"])
        assert.equal(stone[field], undefined, field);
      assert.deepEqual(stone.outbox, []);
      // Its provider event points at it, so a late webhook is still recognised; its number finds it.
      assert.equal(await db.collection(PROVIDER_EVENTS).countDocuments({ orderId: stone._id }), 1);
      assert.equal((await store.byNumber(m.order.number))?._id, stone._id);
    }
    // Every other document is as it was; the new ones are the tombstones and their events.
    for (const [name, docs] of before) {
      const now = after.get(name) ?? [];
      for (const doc of docs.filter((t) => !mentions(t, forgottenWords)))
        assert.ok(now.includes(doc), `unchanged in ${name}: ${doc.slice(0, 120)}`);
      for (const doc of now.filter((t) => !docs.includes(t)))
        assert.ok(doc.includes("erased:"), `only tombstones and what points at them are new in ${name}`);
    }
    for (const m of kept) {
      const order = await store.get(m.order._id);
      assert.equal(order?.state, m.state, `the ${m.old ? "old" : "recent"} ${m.state} order stays`);
      assert.equal(order?.recipient, m.person.recipient);
    }
    assert.equal(await db.collection(CHANGES).countDocuments({ erase: true }), 0, "no erasure left half-way");

    // Nothing ended before the cutoff is left: a second sweep changes nothing.
    assert.deepEqual(await store.sweepExpired(cutoff, new Date(), 100), {
      deleted: 0,
      tombstoned: 0,
      examined: 0,
    });
    assert.deepEqual(await paymentDocuments(), after);
  });

  test("two replicas sweeping at once forget each order once: one tombstone per paid order, nothing left over", async () => {
    const other = new MongoClient(infra.mongo.url);
    try {
      const store = new PaymentStore(db);
      const stores = [store, new PaymentStore(other.db(db.databaseName))];
      const deliveries = new DeliveryStore(db);
      const old = new Date("1995-06-01T00:00:00Z");
      const cutoff = new Date("1996-01-01T00:00:00Z");
      const made: { order: OrderDoc; person: Person }[] = [];
      for (const state of ["shipped", "refunded", "expired", "cancelled", "shipped", "failed"] as const) {
        const p = person(state === "shipped");
        made.push({ order: await orderIn(store, deliveries, state, old, p), person: p });
      }
      const swept = await Promise.all(stores.map((s) => s.sweepExpired(cutoff, new Date(), 100)));
      assert.ok(
        swept.reduce((n, s) => n + s.tombstoned, 0) >= 3,
        `each paid order was tombstoned by one replica or both: ${JSON.stringify(swept)}`,
      );
      for (const { order, person: p } of made) {
        assert.equal(await db.collection(ORDERS).countDocuments({ _id: order._id as never }), 0);
        const paid = order.state === "shipped" || order.state === "refunded";
        assert.equal(await db.collection(ORDERS).countDocuments({ number: order.number }), paid ? 1 : 0);
        assert.equal(await db.collection(ORDERS).countDocuments({ pendingNumber: order.number }), 0);
        for (const name of [CHANGES, SESSIONS])
          assert.equal(await db.collection(name).countDocuments({ orderId: order._id }), 0, name);
        const left = texts(await paymentDocuments());
        assert.deepEqual(
          secretsOf(p).filter((s) => left.some((t) => t.includes(s))),
          [],
        );
      }
      assert.equal(await db.collection(CHANGES).countDocuments({ erase: true }), 0);
    } finally {
      await other.close();
    }
  });

  test("an erasure that stopped half-way is finished by the next sweep, and stops writers meanwhile; an earlier order's leftover claim does not", async () => {
    const store = new PaymentStore(db);
    const deliveries = new DeliveryStore(db);
    const old = new Date("1990-06-01T00:00:00Z");
    const cutoff = new Date("1991-01-01T00:00:00Z");
    const p = person(false);
    const shipped = await orderIn(store, deliveries, "shipped", old, p);
    // What an erasure writes first: the claim of the order's version (then it stopped).
    const claim = {
      _id: `${shipped._id}#${shipped.version}`,
      orderId: shipped._id,
      fromVersion: shipped.version,
      set: {},
      at: new Date(),
      erase: true,
      orderCreatedAt: shipped.createdAt,
      orderNumber: shipped.number,
    };
    await db.collection(CHANGES).insertOne(claim as never);
    assert.equal(await store.get(shipped._id), null, "the order is gone for everyone but its erasers");
    assert.equal(
      await store.transition(
        shipped,
        "refund",
        { refundReason: "by_shop", refundDueAt: new Date() },
        [],
        "test",
        new Date(),
      ),
      undefined,
      "a writer who read it before loses",
    );
    // Its last change is recent (a new order under an id an earlier one used): the earlier one's claim
    // at its version is not about it.
    const q = person(true);
    const live = await orderIn(store, deliveries, "paid", new Date(), q);
    await db.collection(CHANGES).insertOne({
      ...claim,
      _id: `${live._id}#${live.version}`,
      orderId: live._id,
      fromVersion: live.version,
      orderCreatedAt: old,
      orderNumber: "R0LDER00",
    } as never);
    assert.equal((await store.get(live._id))?.state, "paid");
    assert.ok(
      await store.transition(live, "ship", { shippedAt: new Date() }, [], "test", new Date()),
      "the live order is written as usual",
    );

    // Finished, and counted, as the sweep finds it by its claim.
    assert.deepEqual(await store.sweepExpired(cutoff, new Date(), 100), {
      deleted: 0,
      tombstoned: 1,
      examined: 1,
    });
    const stone = await db.collection(ORDERS).findOne({ _id: `erased:${shipped.number}` as never });
    assert.equal(stone?.number, shipped.number);
    assert.equal(stone?.state, "shipped");
    assert.equal(await db.collection(ORDERS).countDocuments({ _id: shipped._id as never }), 0);
    assert.equal(await db.collection(CHANGES).countDocuments({ orderId: shipped._id }), 0);
    assert.equal(await db.collection(CHANGES).countDocuments({ erase: true }), 0);
    const left = texts(await paymentDocuments());
    assert.deepEqual(
      secretsOf(p).filter((s) => left.some((t) => t.includes(s))),
      [],
    );
    assert.equal((await store.get(live._id))?.state, "shipped");
  });

  test("an order found past the cutoff but changed since (a crashed writer's change) is judged as it is now, and kept", async () => {
    const store = new PaymentStore(db);
    const deliveries = new DeliveryStore(db);
    const old = new Date("1985-06-01T00:00:00Z");
    const cutoff = new Date("1986-01-01T00:00:00Z");
    const expired = await orderIn(store, deliveries, "expired", old, person(false));
    // A writer claimed the next version (a new session, now) and died before writing the order.
    const now = new Date();
    await db.collection(CHANGES).insertOne({
      _id: `${expired._id}#${expired.version}`,
      orderId: expired._id,
      fromVersion: expired.version,
      set: { state: "link_sent", version: expired.version + 1, updatedAt: now },
      at: now,
    } as never);
    assert.deepEqual(await store.sweepExpired(cutoff, now, 100), { deleted: 0, tombstoned: 0, examined: 1 });
    const order = await store.get(expired._id);
    assert.equal(order?.state, "link_sent");
    assert.deepEqual(order?.updatedAt, now);
  });

  test("deliveries the shop accepted before the cutoff go with their attempts and outcomes; recent and never-accepted ones stay", async () => {
    const store = new DeliveryStore(db);
    const old = new Date("1999-06-01T00:00:00Z");
    const cutoff = new Date("2000-01-01T00:00:00Z");
    const recent = new Date("2000-02-01T00:00:00Z");
    const p = person(false);
    async function deliveryAt(at: Date, end: "delivered" | "pending" | "no_endpoint") {
      const _id = `order.paid:R${randomUUID().slice(0, 7).toUpperCase()}`;
      assert.equal(
        await store.record({
          _id,
          orderNumber: _id.slice("order.paid:".length),
          shopId: "shop",
          record: Buffer.from(`${p.recipient}\n${p.street}`),
          state: "pending",
          attempts: 0,
          nextAttemptAt: at,
          createdAt: at,
        }),
        "stored",
      );
      assert.equal(
        await store.claim({ _id: `${_id}#1`, deliveryId: _id, attempt: 1, claimedAt: at, by: "test" }),
        "claimed",
      );
      const update =
        end === "pending"
          ? {
              attempts: 1,
              nextAttemptAt: at,
              lastAttemptAt: at,
              lastOutcome: "http_5xx" as const,
              lastStatus: 503,
            }
          : end === "delivered"
            ? {
                state: "delivered" as const,
                attempts: 1,
                nextAttemptAt: null,
                deliveredAt: at,
                lastAttemptAt: at,
                lastOutcome: "delivered" as const,
              }
            : {
                state: "no_endpoint" as const,
                attempts: 1,
                nextAttemptAt: null,
                lastAttemptAt: at,
                lastOutcome: "no_endpoint" as const,
              };
      const outcome = end === "pending" ? "http_5xx" : end;
      assert.equal(
        await store.recordOutcome({ _id: `${_id}#1`, deliveryId: _id, attempt: 1, outcome, at, update }),
        "recorded",
      );
      await store.apply(_id, 1, update);
      return _id;
    }
    const gone = await deliveryAt(old, "delivered");
    const keptIds = [
      await deliveryAt(recent, "delivered"),
      await deliveryAt(old, "pending"),
      await deliveryAt(old, "no_endpoint"),
    ];

    assert.deepEqual(await store.sweepExpired(cutoff, 100), {
      deliveries: 1,
      attempts: 1,
      outcomes: 1,
      examined: 1,
    });
    assert.equal(await db.collection(DELIVERIES).countDocuments({ _id: gone as never }), 0);
    assert.equal(await db.collection(DELIVERY_ATTEMPTS).countDocuments({ deliveryId: gone }), 0);
    assert.equal(await db.collection(OUTCOMES).countDocuments({ deliveryId: gone }), 0);
    for (const id of keptIds) {
      assert.equal(await db.collection(DELIVERIES).countDocuments({ _id: id as never }), 1, id);
      assert.equal(await db.collection(DELIVERY_ATTEMPTS).countDocuments({ deliveryId: id }), 1);
      assert.equal(await db.collection(OUTCOMES).countDocuments({ deliveryId: id }), 1);
    }
    const after = await paymentDocuments();
    assert.deepEqual(await store.sweepExpired(cutoff, 100), {
      deliveries: 0,
      attempts: 0,
      outcomes: 0,
      examined: 0,
    });
    assert.deepEqual(await paymentDocuments(), after, "a second sweep changes nothing");
  });
});

describe("conversation", () => {
  test("a sweep that deleted conversations tells the replicas: one that kept a deleted one in memory drops it and writes none of it back", async () => {
    const old = new Date("1999-06-01T00:00:00Z");
    const cutoff = new Date("2000-01-01T00:00:00Z");
    const id = `PNRET:${randomUUID()}`;
    const replica = new ConversationStore(db);
    const watcher = new CacheForgetWatcher(db, () => replica.forgetCached(), { replica: "it-retention" });
    await watcher.start();
    const next = (state: string) => ({
      conversationId: id,
      phoneNumberId: "PNRET",
      shopperId: id,
      contact: { waId: id },
      conversation: { state, recipient: "Philippa" } as unknown as ConversationDoc["conversation"],
      timers: [],
    });
    assert.equal(await replica.commit(null, next("awaiting_theme"), `${id}-e0`, [], old), 1);
    const remembered = replica.cached(id);
    assert.equal(remembered?.version, 1);
    const token = async () =>
      (await db.collection<{ _id: string; token: string }>(CACHE_EPOCHS).findOne({ _id: "forget" }))?.token;
    const before = await token();

    assert.deepEqual(await new ConversationStore(db).sweepExpired(cutoff, 100), { removed: 1, examined: 1 });
    const announced = await token();
    assert.ok(announced && announced !== before, "the sweep set a new token");
    assert.equal(await watcher.check(), true, "the replica drops its cache at its next check");
    assert.equal(replica.cached(id), undefined);
    assert.equal(
      await replica.commit(remembered ?? null, next("awaiting_style"), `${id}-e1`, [], new Date()),
      "conflict",
      "a copy read before the drop is no ground for a commit (its version claim would succeed)",
    );
    assert.equal(await db.collection(VERSIONS).countDocuments({ conversationId: id }), 0);
    assert.equal(await db.collection("conversation_conversations").countDocuments({ _id: id as never }), 0);

    assert.deepEqual(await new ConversationStore(db).sweepExpired(cutoff, 100), { removed: 0, examined: 0 });
    assert.equal(await token(), announced, "a sweep that deleted nothing leaves the token");
    assert.equal(await watcher.check(), false);
    await watcher.stop();
  });
});

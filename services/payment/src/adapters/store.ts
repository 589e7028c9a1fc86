import { randomUUID } from "node:crypto";
import {
  type CollectionIndexes,
  isDuplicateKey,
  MAX_VERSION_CONFLICTS,
  type OutboxEntry,
  outboxValue,
  removeMatching,
  type StoredOutboxEntry,
} from "@taituri/mongo";
import type { Collection, Db } from "mongodb";
import type { OrderDelivery } from "../domain/delivery.ts";
import {
  type CancelReason,
  type Change,
  canChange,
  type OrderState,
  PAID,
  type RefundReason,
  TRANSITIONS,
} from "../domain/order.ts";
import { ENDED, retentionOf } from "../domain/retention.ts";
import { DELIVERIES, ATTEMPTS as DELIVERY_ATTEMPTS, eraseDeliveries, OUTCOMES } from "../fulfilment/store.ts";

export { type OutboxEntry, outboxValue };

export interface SessionInfo {
  id: string;
  url: string;
  expiresAt: Date;
  attempt: number;
}

export interface OrderDoc {
  /**
   * The order id from the conversation (`<conversation>/o<n>`). It holds the shopper's phone number
   * or BSUID: internal only, never shown to people nor sent to a provider.
   */
  _id: string;
  /** The order number people and the provider see ("7KQ2-M9XD"); unique index `number`. */
  number: string;
  conversationId: string;
  shopId: string;
  productId: string;
  productName: string;
  designId: string;
  imageId: string;
  /** Minor units, from the catalog (checked at creation, never changed). */
  amount: number;
  currency: string;
  /**
   * Where the gift goes and whom it is for, from the request that created the order (checked
   * against the shop's catalog). Personal data: see OrderDelivery. None on orders created before
   * deliveries were asked for.
   */
  delivery?: OrderDelivery;
  recipient?: string;
  provider: string;
  state: OrderState;
  /** Sessions opened so far; the current one is `session`. */
  attempt: number;
  session?: SessionInfo;
  /** For the sweeper: when a local session that is still open stops being payable. */
  openUntil: Date | null;
  paidSessionId?: string;
  paymentRef?: string;
  paidAt?: Date;
  linkSentAt?: Date;
  failureReason?: string;
  cancelReason?: CancelReason;
  cancelledAt?: Date;
  /** The session that was open when the order was cancelled: closed at the provider. */
  cancelledSessionId?: string;
  refundReason?: RefundReason;
  /** For the sweeper: since when a refund_due order waits for its provider refund (null: not waiting). */
  refundDueAt?: Date | null;
  /** Why the provider refused the refund: a person takes over (the sweeper no longer retries it). */
  refundRefused?: string;
  refundedAt?: Date;
  /** When the shop said it sent the gift, and where the shopper can follow it (if the shop said). */
  shippedAt?: Date;
  trackingUrl?: string;
  /** Bumped by every write; a write that expects another version lost a race and is redone. */
  version: number;
  outbox: StoredOutboxEntry[];
  /** When the oldest unpublished outbox entry was written (null: none), for the sweeper. */
  outboxSince: Date | null;
  history: { state: OrderState; at: Date; by: string }[];
  createdAt: Date;
  updatedAt: Date;
}

export type NewOrder = Omit<
  OrderDoc,
  | "number"
  | "state"
  | "attempt"
  | "openUntil"
  | "version"
  | "outbox"
  | "outboxSince"
  | "history"
  | "createdAt"
  | "updatedAt"
>;

/** One committed (or claimed) write of an order: see PaymentStore.#commit. */
interface ChangeDoc {
  /** "<order id>#<version it replaces>": unique, so one writer per version. */
  _id: string;
  orderId: string;
  fromVersion: number;
  set: Partial<OrderDoc>;
  at: Date;
  /**
   * Set on the claim of an erasure (an erase or the retention sweep, see PaymentStore.forget): its
   * `set` is never written, and the order is gone for get() from then on.
   */
  erase?: true;
  /**
   * On an erasure's claim: when the order was created, which tells it from a later order under the
   * same id (a shopper back after their conversation ended numbers orders from o1 again).
   */
  orderCreatedAt?: Date;
  /** On an erasure's claim: the order's number, which its tombstone takes once the order is gone. */
  orderNumber?: string;
}

const changeId = (orderId: string, version: number) => `${orderId}#${version}`;

/** One provider checkout session. Unique provider session id: `_id`. */
interface SessionDoc {
  _id: string;
  orderId: string;
  attempt: number;
  url: string;
  expiresAt: Date;
  provider: string;
  createdAt: Date;
}

/** The fields a transition may set beside the state (see PaymentStore.transition). */
export type OrderPatch = Partial<
  Pick<
    OrderDoc,
    | "session"
    | "attempt"
    | "paidSessionId"
    | "paymentRef"
    | "paidAt"
    | "linkSentAt"
    | "failureReason"
    | "openUntil"
    | "cancelReason"
    | "cancelledAt"
    | "cancelledSessionId"
    | "refundReason"
    | "refundDueAt"
    | "refundRefused"
    | "refundedAt"
    | "shippedAt"
    | "trackingUrl"
  >
>;

/** Draws of an order number in a row that may meet a number already taken before giving up. */
const NUMBER_DRAWS = 5;

/**
 * One provider event as received. Idempotency key of the webhooks: the provider's event id, unique
 * as `_id`. `processedAt` is set once its effect (if any) is in the order, so a redelivery after
 * that is answered with one lookup; one without it (a crash in between) is processed again, which
 * the order's version claim makes harmless.
 */
interface ProviderEventDoc {
  _id: string;
  provider: string;
  type: string;
  sessionId: string;
  /** The order number the event names (its metadata), if any. */
  orderNumber?: string;
  /** The order it was applied to, once known. */
  orderId?: string;
  receivedAt: Date;
  processedAt?: Date;
  outcome?: string;
}

export const ORDERS = "payment_orders";
export const CHANGES = "payment_order_changes";
export const SESSIONS = "payment_sessions";
export const PROVIDER_EVENTS = "payment_provider_events";

/**
 * Unique indexes: order id (`_id` of payment_orders), order number (`number` of payment_orders),
 * provider session id (`_id` of payment_sessions), provider event id (`_id` of
 * payment_provider_events). The others serve the sweeper and the lookups.
 */
export const paymentIndexes: CollectionIndexes[] = [
  {
    collection: ORDERS,
    indexes: [
      // Sparse: an order written before order numbers existed has none, and must not collide.
      { key: { number: 1 }, name: "number", unique: true, sparse: true },
      { key: { openUntil: 1 }, name: "open_until" },
      { key: { outboxSince: 1 }, name: "outbox_since" },
      { key: { state: 1 }, name: "state" },
      // The orders CLI's list: newest first, of one state or all.
      { key: { state: 1, createdAt: -1 }, name: "state_created" },
      // The retention sweep: ended orders by their last change.
      { key: { state: 1, updatedAt: 1 }, name: "state_updated" },
    ],
  },
  { collection: SESSIONS, indexes: [{ key: { orderId: 1 }, name: "order" }] },
  { collection: CHANGES, indexes: [{ key: { orderId: 1 }, name: "order" }] },
  { collection: PROVIDER_EVENTS, indexes: [{ key: { orderId: 1 }, name: "order" }] },
];

/** What forgetting one order removed, per collection, and the tombstone kept of a paid one. */
export interface Forgotten {
  counts: Record<string, number>;
  kept?: { number: string; state: OrderState };
}

/** What a retention sweep of the orders did (see PaymentStore.sweepExpired). */
export interface OrderSweep {
  /** Never-paid orders deleted with their changes, sessions and provider events. */
  deleted: number;
  /** Paid orders replaced by their tombstone. */
  tombstoned: number;
  /** Orders found past the retention, and erasures found unfinished: `limit` means more may wait. */
  examined: number;
}

export class PaymentStore {
  readonly orders: Collection<OrderDoc>;
  readonly #db: Db;
  readonly #sessions: Collection<SessionDoc>;
  readonly #events: Collection<ProviderEventDoc>;
  readonly #changes: Collection<ChangeDoc>;
  readonly #tombstones: Collection<Tombstone>;

  constructor(db: Db) {
    this.#db = db;
    this.#changes = db.collection<ChangeDoc>(CHANGES);
    this.orders = db.collection<OrderDoc>(ORDERS);
    this.#tombstones = db.collection<Tombstone>(ORDERS);
    this.#sessions = db.collection<SessionDoc>(SESSIONS);
    this.#events = db.collection<ProviderEventDoc>(PROVIDER_EVENTS);
  }

  /**
   * The order as of its last committed change (one a crashed writer claimed is finished first);
   * null when there is none or an erasure has claimed it (see forget).
   */
  async get(orderId: string): Promise<OrderDoc | null> {
    const settled = await this.#settle(orderId);
    return settled && !settled.erasing ? settled.order : null;
  }

  /** The order as of its last committed change, and whether an erasure has claimed it. */
  async #settle(orderId: string): Promise<{ order: OrderDoc; erasing: boolean } | null> {
    for (let hops = 0; hops < 10; hops++) {
      const doc = await this.orders.findOne({ _id: orderId });
      if (!doc) return null;
      const pending = await this.#changes.findOne({ _id: changeId(orderId, doc.version) });
      if (!pending) return { order: doc, erasing: false };
      if (pending.erase) {
        if (pending.orderCreatedAt?.getTime() === doc.createdAt.getTime())
          return { order: doc, erasing: true };
        // Left by an erasure of an earlier order under this id that stopped before its end.
        await this.#changes.deleteOne({ _id: pending._id, erase: true });
        continue;
      }
      // Claimed but maybe not written (the writer died, or is writing now): write the same
      // content; a second identical write changes nothing.
      await this.orders.updateOne({ _id: orderId, version: doc.version }, { $set: pending.set });
    }
    throw new Error(`order ${orderId} did not settle`);
  }

  /** The order with this number (canonical form, see domain/order-number.ts), settled as get() does. */
  async byNumber(number: string): Promise<OrderDoc | null> {
    const found = await this.orders.findOne({ number }, { projection: { _id: 1 } });
    return found ? this.get(found._id) : null;
  }

  /**
   * Creates the order in state "created" with a new number, or returns the one a previous request
   * created. The insert is the claim: a redelivered or concurrent request finds the first order
   * (and its number) by `_id`. A refusal whose order does not exist was the number's unique index:
   * that number is taken by another order, so another is drawn. (FerretDB does not say which index
   * refused, so the lookup by `_id` tells them apart.)
   */
  async create(order: NewOrder, at: Date, drawNumber: () => string): Promise<OrderDoc> {
    for (let draw = 0; draw < NUMBER_DRAWS; draw++) {
      const doc = newOrderDoc(order, drawNumber(), at);
      try {
        await this.orders.insertOne(doc);
        return doc;
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        const existing = await this.#settle(order._id);
        if (existing?.erasing)
          throw new Error(`order ${order._id} is being erased; ask again once it is gone`);
        if (existing) return existing.order;
      }
    }
    throw new Error(`order ${order._id}: ${NUMBER_DRAWS} order numbers in a row were taken`);
  }

  /**
   * Applies `change` to the order as read, if it is allowed from the order's state and nobody else
   * changed the order since (see commit). Returns the updated order, or undefined when another
   * writer got there first: the caller reloads and decides again.
   */
  async transition(
    order: OrderDoc,
    change: Change,
    patch: OrderPatch,
    outbox: OutboxEntry[],
    by: string,
    at: Date,
  ): Promise<OrderDoc | undefined> {
    if (!canChange(order.state, change, order.cancelReason)) return undefined;
    return this.#commit(order, transitionWrite(order, change, patch, outbox, by, at), at);
  }

  /** Records a fact about the order that changes no state; undefined when another writer got there first. */
  note(order: OrderDoc, patch: OrderPatch, at: Date): Promise<OrderDoc | undefined> {
    return this.#commit(order, patch, at);
  }

  /** Forgets the published entries, whatever else happened to the order meanwhile. */
  async clearOutbox(orderId: string, published: string[]): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.get(orderId);
      if (!current?.outbox.some((e) => published.includes(e.id))) return;
      const left = current.outbox.filter((e) => !published.includes(e.id));
      const done = await this.#commit(
        current,
        { outbox: left, outboxSince: left.length > 0 ? current.outboxSince : null },
        new Date(),
      );
      if (done) return;
    }
  }

  /**
   * Writes the order's next version. The atomic step is the insert of the change under the unique
   * id "<order>#<version it replaces>": of any writers that read the same version, exactly one
   * inserts it, the others get E11000 and lose. Only then is the order updated (conditionally on
   * that version, which on MongoDB alone would be atomic; FerretDB 1.24 evaluates the filter and
   * writes in two steps: of 5 concurrent conditional updates of one document 2 to 5 were measured to
   * succeed). The change keeps its content, so a writer that dies between the two steps leaves a
   * change that the next get() finishes. payment_order_changes is thus the orders' write-ahead log
   * and their audit trail.
   */
  async #commit(order: OrderDoc, set: Partial<OrderDoc>, at: Date): Promise<OrderDoc | undefined> {
    const full: Partial<OrderDoc> = { ...set, version: order.version + 1, updatedAt: at };
    try {
      await this.#changes.insertOne({
        _id: changeId(order._id, order.version),
        orderId: order._id,
        fromVersion: order.version,
        set: full,
        at,
      });
    } catch (error) {
      if (isDuplicateKey(error)) return undefined;
      throw error;
    }
    await this.orders.updateOne({ _id: order._id, version: order.version }, { $set: full });
    return { ...order, ...full } as OrderDoc;
  }

  /** Records a provider session; a second record of the same session (a retried create) is fine. */
  async recordSession(orderId: string, session: SessionInfo, provider: string, at: Date): Promise<void> {
    try {
      await this.#sessions.insertOne({
        _id: session.id,
        orderId,
        attempt: session.attempt,
        url: session.url,
        expiresAt: session.expiresAt,
        provider,
        createdAt: at,
      });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      const existing = await this.#sessions.findOne({ _id: session.id });
      if (existing?.orderId !== orderId)
        throw new Error(`provider session ${session.id} already belongs to order ${existing?.orderId}`);
    }
  }

  /** The order a session we created belongs to; undefined for one we never created. */
  async sessionOrder(sessionId: string): Promise<string | undefined> {
    // Callers check the id's shape (domain/ids.ts); a non-string never becomes a filter here either.
    if (typeof sessionId !== "string") return undefined;
    return (await this.#sessions.findOne({ _id: sessionId }))?.orderId;
  }

  /**
   * The session recorded for the order's `attempt`, if one was: a "open a session" redone after a
   * crash (or by a second consumer) finds the first one's instead of opening another.
   */
  async sessionFor(orderId: string, attempt: number): Promise<SessionInfo | undefined> {
    const doc = await this.#sessions.findOne({ orderId, attempt }, { sort: { createdAt: 1 } });
    return doc ? { id: doc._id, url: doc.url, expiresAt: doc.expiresAt, attempt: doc.attempt } : undefined;
  }

  /** First sight of a provider event: "new", "seen" (not finished) or "processed". */
  async claimEvent(
    event: Omit<ProviderEventDoc, "receivedAt">,
    at: Date,
  ): Promise<"new" | "seen" | "processed"> {
    try {
      await this.#events.insertOne({ ...event, receivedAt: at });
      return "new";
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      const existing = await this.#events.findOne({ _id: event._id });
      return existing?.processedAt ? "processed" : "seen";
    }
  }

  async markEventProcessed(id: string, outcome: string, at: Date, orderId?: string): Promise<void> {
    await this.#events.updateOne(
      { _id: id, processedAt: { $exists: false } },
      { $set: { processedAt: at, outcome, ...(orderId ? { orderId } : {}) } },
    );
  }

  /** Orders whose outbox a crashed writer may have left behind. */
  unpublished(olderThan: Date, limit: number): Promise<OrderDoc[]> {
    return this.orders
      .find({ outboxSince: { $ne: null, $lte: olderThan } })
      .limit(limit)
      .toArray();
  }

  /** Open sessions of `provider` past their expiry. */
  dueForExpiry(provider: string, at: Date, limit: number): Promise<OrderDoc[]> {
    return this.orders
      .find({ provider, state: "link_sent", openUntil: { $ne: null, $lte: at } })
      .limit(limit)
      .toArray();
  }

  /** Orders whose provider refund has waited since before `olderThan` (their writer has probably died). */
  dueForRefund(olderThan: Date, limit: number): Promise<OrderDoc[]> {
    return this.orders
      .find({ state: "refund_due", refundDueAt: { $ne: null, $lte: olderThan } })
      .limit(limit)
      .toArray();
  }

  /**
   * Orders newest first, of one state or all, created before `before` (the last one of the previous
   * page), for the orders CLI. FerretDB hands the state (an equality) to PostgreSQL and sorts and
   * applies `before` itself; an operator's query, not a hot path. As stored: a change a crashed
   * writer claimed but did not write shows once get() reads the order.
   */
  list(query: { state?: OrderState; limit: number; before?: Date }): Promise<OrderDoc[]> {
    return this.orders
      .find({
        ...(query.state ? { state: query.state } : {}),
        ...(query.before ? { createdAt: { $lt: query.before } } : {}),
      })
      .sort({ createdAt: -1 })
      .limit(query.limit)
      .toArray();
  }

  async countByState(): Promise<Record<string, number>> {
    const rows = await this.orders
      .aggregate<{ _id: string; n: number }>([{ $group: { _id: "$state", n: { $sum: 1 } } }])
      .toArray();
    return Object.fromEntries(rows.map((r) => [r._id, r.n]));
  }

  /**
   * Forgets an order: the one way both an erase and the retention sweep do it. One never paid goes
   * with its sessions, changes and provider events. A paid one (PAID) is a record the shop may have
   * to keep for its accounts: it is replaced by its tombstone (see `tombstone`), its changes and
   * sessions go and its provider events point at the tombstone. Either way its deliveries to the
   * shop go (their record holds the address). `due` says whether the order, as it is when read
   * here, is still to go (the sweep's rule; an erase has none). With `dryRun` it only counts.
   * Undefined: nothing to forget (gone already, a tombstone, or no longer due).
   *
   * The first write claims the order's version in payment_order_changes (`erase: true`): a writer
   * who read that version loses its claim (see #commit), and get() finds no order from then on, so
   * the tombstone is the order as read here. Two erasers (two replicas' sweeps, a sweep and an
   * erase) both go on under the one claim: each step after it is idempotent and the tombstone's id
   * is fixed. The claim goes last, after the original: should this stop half-way, the claim is what
   * finishErasures finds.
   */
  async forget(
    orderId: string,
    at: Date,
    options: { dryRun?: boolean; due?: (order: OrderDoc) => boolean } = {},
  ): Promise<Forgotten | undefined> {
    const dryRun = options.dryRun ?? false;
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
      const settled = await this.#settle(orderId);
      if (!settled || isTombstone(settled.order)) return undefined;
      const { order, erasing } = settled;
      if (!erasing) {
        if (options.due && !options.due(order)) return undefined;
        // Lost to a writer: the order changed, so it is read and judged again.
        if (!dryRun && !(await this.#claimErasure(order, at))) continue;
      }
      return this.#forgetClaimed(order, at, dryRun);
    }
    throw new Error(`order ${orderId} changed ${MAX_VERSION_CONFLICTS} times while being forgotten`);
  }

  /** True when the order's version is claimed for its erasure, by this call or by another eraser. */
  async #claimErasure(order: OrderDoc, at: Date): Promise<boolean> {
    const _id = changeId(order._id, order.version);
    try {
      await this.#changes.insertOne({
        _id,
        orderId: order._id,
        fromVersion: order.version,
        set: {},
        at,
        erase: true,
        orderCreatedAt: order.createdAt,
        ...(order.number ? { orderNumber: order.number } : {}),
      });
      return true;
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      return (await this.#changes.findOne({ _id }))?.erase === true;
    }
  }

  async #forgetClaimed(order: OrderDoc, at: Date, dryRun: boolean): Promise<Forgotten> {
    const orderId = order._id;
    const counts: Record<string, number> = {};
    const add = (name: string, n: number) => {
      counts[name] = (counts[name] ?? 0) + n;
    };
    add(SESSIONS, await removeMatching(this.#sessions, { orderId }, dryRun));
    if (order.number)
      for (const [name, n] of Object.entries(await eraseDeliveries(this.#db, order.number, dryRun)))
        add(name, n);
    const paid = PAID.includes(order.state);
    const stone = paid ? tombstone(order, at) : undefined;
    if (!stone) {
      add(PROVIDER_EVENTS, await removeMatching(this.#events, { orderId }, dryRun));
    } else if (!dryRun) {
      try {
        await this.#tombstones.insertOne(stone);
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
      }
      // A late webhook about the order is still recognised: it finds the tombstone.
      await this.#events.updateMany({ orderId }, { $set: { orderId: stone._id } });
    }
    // The claim stays until the end: it keeps every writer off the order, and tells finishErasures
    // what is left to do should this stop half-way.
    add(CHANGES, await removeMatching(this.#changes, { orderId, erase: { $ne: true } }, dryRun));
    if (stone) add(ORDERS, 1);
    else add(ORDERS, await removeMatching(this.orders, { _id: orderId }, dryRun));
    if (dryRun) return { counts, ...(paid ? { kept: { number: order.number, state: order.state } } : {}) };
    if (stone) {
      await this.orders.deleteOne({ _id: orderId });
      if (order.number) await this.#settleNumber(stone._id, order.number);
    }
    await this.#changes.deleteMany({ orderId, erase: true });
    return { counts, ...(paid ? { kept: { number: order.number, state: order.state } } : {}) };
  }

  /**
   * Gives a tombstone the number its original held, once the original is gone (the number's unique
   * index allows one order per number). Refused while the original still exists: its erasure is
   * unfinished and does this itself.
   */
  async #settleNumber(tombstoneId: string, number: string): Promise<void> {
    try {
      await this.#tombstones.updateOne(
        { _id: tombstoneId },
        { $set: { number }, $unset: { pendingNumber: "" } },
      );
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
  }

  /** Gives every tombstone still without its number the number, where its original is gone. */
  async settleNumbers(): Promise<void> {
    for (const unfinished of await this.#tombstones.find({ pendingNumber: { $exists: true } }).toArray())
      if (unfinished.pendingNumber) await this.#settleNumber(unfinished._id, unfinished.pendingNumber);
  }

  /**
   * Finishes up to `limit` erasures that stopped half-way, found by their claim (see forget): the
   * order's, if it is still there; else what is left (the tombstone's number, the claim). Also
   * finds erasures under way elsewhere, which it joins: every step is idempotent.
   */
  async finishErasures(at: Date, limit: number): Promise<OrderSweep> {
    const claims = await this.#changes
      .find({ erase: true }, { projection: { orderId: 1, orderNumber: 1 } })
      .limit(limit)
      .toArray();
    const done: OrderSweep = { deleted: 0, tombstoned: 0, examined: claims.length };
    for (const claim of claims) {
      const settled = await this.#settle(claim.orderId);
      if (settled?.erasing) {
        count(done, await this.#forgetClaimed(settled.order, at, false));
        continue;
      }
      // The order is gone (or a later one has its id, which the claim is not about).
      if (claim.orderNumber) await this.#settleNumber(`${ERASED}:${claim.orderNumber}`, claim.orderNumber);
      await this.#changes.deleteOne({ _id: claim._id, erase: true });
    }
    return done;
  }

  /**
   * The retention of PAYMENT_RETENTION_DAYS: forgets (see forget) up to `limit` orders that ended
   * (domain/retention.ts) with their last change before `before`: the never-paid ones are deleted,
   * the paid ones replaced by their tombstone. One state at a time, by `state` and `updatedAt`
   * (indexed; FerretDB hands PostgreSQL the state, an equality); tombstones are not orders to
   * forget again. Each order is judged again as forget reads it: one changed since is kept. First,
   * erasures an earlier sweep or erase left unfinished are finished.
   */
  async sweepExpired(before: Date, at: Date, limit: number): Promise<OrderSweep> {
    const done = await this.finishErasures(at, limit);
    const due = (order: OrderDoc) => retentionOf(order, before) !== "keep";
    for (const state of ENDED) {
      if (done.examined >= limit) break;
      const found = await this.#tombstones
        .find({ state, updatedAt: { $lt: before }, erasedAt: { $exists: false } }, { projection: { _id: 1 } })
        .limit(limit - done.examined)
        .toArray();
      done.examined += found.length;
      for (const { _id } of found) count(done, await this.forget(_id, at, { due }));
    }
    return done;
  }
}

/** A new order as first stored: `created`, version 1, with its number. */
export function newOrderDoc(order: NewOrder, number: string, at: Date): OrderDoc {
  return {
    ...order,
    number,
    state: "created",
    attempt: 0,
    openUntil: null,
    version: 1,
    outbox: [],
    outboxSince: null,
    history: [{ state: "created", at, by: "request" }],
    createdAt: at,
    updatedAt: at,
  };
}

/** What a change writes to an order: its patch, the new state, the outbox grown, the history. */
export function transitionWrite(
  order: OrderDoc,
  change: Change,
  patch: OrderPatch,
  outbox: OutboxEntry[],
  by: string,
  at: Date,
): Partial<OrderDoc> {
  const to = TRANSITIONS[change].to;
  const pending = [...order.outbox, ...outbox];
  return {
    ...patch,
    state: to,
    outbox: pending,
    outboxSince: pending.length > 0 ? (order.outboxSince ?? at) : null,
    history: [...order.history, { state: to, at, by }],
  };
}

/** What an erased order's conversation id, design and image become: no link to the shopper is left. */
export const ERASED = "erased";

/**
 * The id an erased paid order is kept under: its number, which the order keeps anyway (the order id
 * `<conversation>/o<n>` holds the shopper's phone number or BSUID). Fixed, so two erasers and a
 * rerun after a crash write the same tombstone. An order from before order numbers has the
 * provider's id of the session it was paid on instead, which the tombstone keeps too.
 */
const tombstoneId = (order: OrderDoc) => `${ERASED}:${order.number || order.paidSessionId || randomUUID()}`;

type Tombstone = Omit<OrderDoc, "number"> & {
  number?: string;
  erasedAt: Date;
  /** The number, until the original is gone and it can move to `number`. */
  pendingNumber?: string;
};

const isTombstone = (order: OrderDoc) => "erasedAt" in order;

/** Adds what forgetting an order did to a sweep's counts (an order another eraser removed first counts nowhere). */
function count(sweep: OrderSweep, forgotten: Forgotten | undefined): void {
  if (forgotten?.kept) sweep.tombstoned++;
  else if (forgotten?.counts[ORDERS]) sweep.deleted++;
}

/**
 * An erased paid order: what was sold, for how much, its state, the payment's and the refund's
 * references and every date, which the shop's accounts need (its number is set after the original
 * is gone: the number's unique index allows one order per number); no conversation, design,
 * recipient, address, checkout session, tracking link nor pending events, which name the shopper.
 */
function tombstone(order: OrderDoc, at: Date): Tombstone {
  const {
    delivery: _delivery,
    recipient: _recipient,
    session: _session,
    trackingUrl: _tracking,
    number: _number,
    ...kept
  } = order;
  return {
    ...kept,
    _id: tombstoneId(order),
    conversationId: ERASED,
    designId: ERASED,
    imageId: ERASED,
    outbox: [],
    outboxSince: null,
    erasedAt: at,
    ...(order.number ? { pendingNumber: order.number } : {}),
  };
}

/**
 * Erases the conversations' orders, for `npm run erase`; with `dryRun` only counts. Each is
 * forgotten as PaymentStore.forget does: an order never paid goes with everything of it, a paid one
 * (PAID: paid, shipped, refund_due, refunded) is replaced by its tombstone, and its deliveries to
 * the shop (the record holds the address) go. Returns the count per collection, and the tombstones
 * kept.
 */
export async function eraseShopper(
  db: Db,
  conversationIds: string[],
  dryRun: boolean,
  at: Date,
): Promise<{ counts: Record<string, number>; kept: { number: string; state: OrderState }[] }> {
  const store = new PaymentStore(db);
  const counts: Record<string, number> = {
    [ORDERS]: 0,
    [CHANGES]: 0,
    [SESSIONS]: 0,
    [PROVIDER_EVENTS]: 0,
    [DELIVERIES]: 0,
    [DELIVERY_ATTEMPTS]: 0,
    [OUTCOMES]: 0,
  };
  const kept: { number: string; state: OrderState }[] = [];
  for (const conversationId of conversationIds) {
    const orders = await store.orders.find({ conversationId }, { projection: { _id: 1 } }).toArray();
    for (const { _id } of orders) {
      const forgotten = await store.forget(_id, at, { dryRun });
      if (!forgotten) continue;
      for (const [name, n] of Object.entries(forgotten.counts)) counts[name] = (counts[name] ?? 0) + n;
      if (forgotten.kept) kept.push(forgotten.kept);
    }
  }
  if (!dryRun) {
    // Erasures an earlier run (or a sweep) left half-way, this shopper's or another's.
    await store.finishErasures(at, 1000);
    // Tombstones erased before erasures were claimed, left without their number by a crash.
    await store.settleNumbers();
  }
  return { counts, kept };
}

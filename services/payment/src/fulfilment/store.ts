import { type CollectionIndexes, isDuplicateKey, removeMatching } from "@taituri/mongo";
import type { Binary, Collection, Db } from "mongodb";
import { deliveryExpired } from "../domain/retention.ts";

export const DELIVERIES = "fulfilment_deliveries";
export const ATTEMPTS = "fulfilment_attempts";
export const OUTCOMES = "fulfilment_attempt_outcomes";

/** pending: being posted until a 2xx; delivered: the shop acknowledged it; no_endpoint: for the orders CLI. */
export type DeliveryState = "pending" | "delivered" | "no_endpoint";

/**
 * How one attempt ended (fulfilment_delivery_attempts_total{outcome}): a 2xx, a status class, no
 * answer in time, no connection, or `abandoned` (its replica died while posting; see worker.ts).
 * `no_endpoint` is an attempt that found the shop's endpoint gone from the configuration: nothing
 * was posted (counted by fulfilment_orders_without_endpoint_total instead).
 */
export type AttemptOutcome =
  | "delivered"
  | "http_3xx"
  | "http_4xx"
  | "http_5xx"
  | "timeout"
  | "network"
  | "abandoned"
  | "no_endpoint";

/**
 * One paid order on its way to the shop. Idempotency key: the event id ("order.paid:<number>"),
 * the unique `_id`, so a redelivered record finds its delivery and posts nothing more.
 */
export interface DeliveryDoc {
  _id: string;
  orderNumber: string;
  shopId: string;
  /** The fulfilment.v1.OrderPaid record as consumed (it holds the recipient and the address). */
  record: Buffer | Binary;
  state: DeliveryState;
  /** Attempts finished (counted, abandoned ones too); the next one is attempts + 1. */
  attempts: number;
  /** When the next attempt is due; null once delivered or without endpoint. */
  nextAttemptAt: Date | null;
  createdAt: Date;
  lastAttemptAt?: Date;
  lastOutcome?: AttemptOutcome;
  lastStatus?: number;
  deliveredAt?: Date;
}

/** What an attempt's end writes to its delivery. */
export type DeliveryUpdate = Partial<
  Pick<
    DeliveryDoc,
    "state" | "attempts" | "nextAttemptAt" | "lastAttemptAt" | "lastOutcome" | "lastStatus" | "deliveredAt"
  >
>;

/**
 * The claim of attempt n of a delivery: `_id` "<event id>#<n>", unique, so of the replicas that
 * find a delivery due at once exactly one posts attempt n. `claimedAt` is its lease's start.
 */
export interface AttemptClaim {
  _id: string;
  deliveryId: string;
  attempt: number;
  claimedAt: Date;
  /** Which replica claimed it (host and pid), for the logs of a taken-over claim. */
  by: string;
}

/**
 * How attempt n ended, under the same `_id` as its claim, unique: of the claimer reporting its
 * result and a replica writing the attempt off as abandoned, the first insert decides, and the
 * delivery is then written from it (by either, or again by anyone who finds it unapplied after a
 * crash). One per attempt: the delivery's history for operators.
 */
export interface AttemptOutcomeDoc {
  _id: string;
  deliveryId: string;
  attempt: number;
  outcome: AttemptOutcome;
  status?: number;
  durationMs?: number;
  at: Date;
  update: DeliveryUpdate;
}

export const attemptId = (deliveryId: string, attempt: number) => `${deliveryId}#${attempt}`;

/**
 * Unique indexes: the event id (`_id` of fulfilment_deliveries), the attempt's claim and outcome
 * ("<event id>#<n>", `_id` of fulfilment_attempts and fulfilment_attempt_outcomes). The others serve
 * the worker's due query, the pending metrics, the lookups by order number and the retention sweep.
 */
export const fulfilmentIndexes: CollectionIndexes[] = [
  {
    collection: DELIVERIES,
    indexes: [
      { key: { state: 1, nextAttemptAt: 1 }, name: "due" },
      { key: { state: 1, createdAt: 1 }, name: "state_created" },
      { key: { orderNumber: 1 }, name: "order_number" },
      // The retention sweep: deliveries the shop accepted, by when.
      { key: { state: 1, deliveredAt: 1 }, name: "state_delivered" },
    ],
  },
  { collection: ATTEMPTS, indexes: [{ key: { deliveryId: 1 }, name: "delivery" }] },
  { collection: OUTCOMES, indexes: [{ key: { deliveryId: 1 }, name: "delivery" }] },
];

/** What the worker and the consumer need of the store (a fake in unit tests). */
export interface DeliveryLedger {
  record(doc: DeliveryDoc): Promise<"stored" | "duplicate">;
  due(at: Date, limit: number): Promise<DeliveryDoc[]>;
  claim(claim: AttemptClaim): Promise<"claimed" | AttemptClaim>;
  outcome(deliveryId: string, attempt: number): Promise<AttemptOutcomeDoc | null>;
  recordOutcome(outcome: AttemptOutcomeDoc): Promise<"recorded" | AttemptOutcomeDoc>;
  apply(deliveryId: string, attempt: number, update: DeliveryUpdate): Promise<void>;
}

export class DeliveryStore implements DeliveryLedger {
  readonly deliveries: Collection<DeliveryDoc>;
  readonly #attempts: Collection<AttemptClaim>;
  readonly #outcomes: Collection<AttemptOutcomeDoc>;

  constructor(db: Db) {
    this.deliveries = db.collection<DeliveryDoc>(DELIVERIES);
    this.#attempts = db.collection<AttemptClaim>(ATTEMPTS);
    this.#outcomes = db.collection<AttemptOutcomeDoc>(OUTCOMES);
  }

  async record(doc: DeliveryDoc): Promise<"stored" | "duplicate"> {
    try {
      await this.deliveries.insertOne(doc);
      return "stored";
    } catch (error) {
      if (isDuplicateKey(error)) return "duplicate";
      throw error;
    }
  }

  /** Pending deliveries whose next attempt is due, oldest due first. */
  due(at: Date, limit: number): Promise<DeliveryDoc[]> {
    return this.deliveries
      .find({ state: "pending", nextAttemptAt: { $lte: at } })
      .sort({ nextAttemptAt: 1 })
      .limit(limit)
      .toArray();
  }

  async claim(claim: AttemptClaim): Promise<"claimed" | AttemptClaim> {
    try {
      await this.#attempts.insertOne(claim);
      return "claimed";
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      const existing = await this.#attempts.findOne({ _id: claim._id });
      if (!existing) throw new Error(`claim ${claim._id} refused as a duplicate but not found`);
      return existing;
    }
  }

  outcome(deliveryId: string, attempt: number): Promise<AttemptOutcomeDoc | null> {
    return this.#outcomes.findOne({ _id: attemptId(deliveryId, attempt) });
  }

  async recordOutcome(outcome: AttemptOutcomeDoc): Promise<"recorded" | AttemptOutcomeDoc> {
    try {
      await this.#outcomes.insertOne(outcome);
      return "recorded";
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      const existing = await this.#outcomes.findOne({ _id: outcome._id });
      if (!existing) throw new Error(`outcome ${outcome._id} refused as a duplicate but not found`);
      return existing;
    }
  }

  /**
   * Writes attempt n's outcome to the delivery, if the delivery still shows attempt n-1 done. Only
   * the outcome's writer (or someone repeating that same write after a crash) gets here for attempt
   * n, so the conditional update, read-then-replace on FerretDB, meets no competing content.
   */
  async apply(deliveryId: string, attempt: number, update: DeliveryUpdate): Promise<void> {
    await this.deliveries.updateOne({ _id: deliveryId, attempts: attempt - 1 }, { $set: update });
  }

  /** For the metrics: pending deliveries, and when the oldest was recorded. */
  async pendingStats(): Promise<{ count: number; oldest: Date | null }> {
    const count = await this.deliveries.countDocuments({ state: "pending" });
    if (count === 0) return { count, oldest: null };
    const [oldest] = await this.deliveries
      .find({ state: "pending" }, { projection: { createdAt: 1 } })
      .sort({ createdAt: 1 })
      .limit(1)
      .toArray();
    return { count, oldest: oldest?.createdAt ?? null };
  }

  /**
   * The retention of PAYMENT_RETENTION_DAYS: deletes up to `limit` deliveries the shop accepted
   * before `before`, each with its attempts and outcomes (the delivery last, so one cut short is
   * found again). Safe: an accepted delivery is never written again, and the retention is longer
   * than the orders topic keeps the record that would make it anew. One never accepted stays: it is
   * retried until the shop takes it (or waits for the orders CLI). Any replica may sweep: a delivery
   * deleted by another is simply not found again. `examined`: a full batch means more may wait.
   */
  async sweepExpired(
    before: Date,
    limit: number,
  ): Promise<{ deliveries: number; attempts: number; outcomes: number; examined: number }> {
    const found = await this.deliveries
      .find(
        { state: "delivered", deliveredAt: { $lt: before } },
        { projection: { _id: 1, state: 1, deliveredAt: 1 } },
      )
      .limit(limit)
      .toArray();
    let deliveries = 0;
    let attempts = 0;
    let outcomes = 0;
    for (const delivery of found) {
      if (!deliveryExpired(delivery, before)) continue;
      const deliveryId = delivery._id;
      attempts += (await this.#attempts.deleteMany({ deliveryId })).deletedCount;
      outcomes += (await this.#outcomes.deleteMany({ deliveryId })).deletedCount;
      deliveries += (await this.deliveries.deleteOne({ _id: deliveryId })).deletedCount;
    }
    return { deliveries, attempts, outcomes, examined: found.length };
  }
}

/**
 * Deletes an order's deliveries to the shop (whose record holds the recipient and the address) with
 * their attempts and outcomes, for `npm run erase`; with `dryRun` only counts.
 */
export async function eraseDeliveries(
  db: Db,
  orderNumber: string,
  dryRun: boolean,
): Promise<Record<string, number>> {
  const deliveries = db.collection<DeliveryDoc>(DELIVERIES);
  const counts: Record<string, number> = { [DELIVERIES]: 0, [ATTEMPTS]: 0, [OUTCOMES]: 0 };
  for (const delivery of await deliveries.find({ orderNumber }, { projection: { _id: 1 } }).toArray()) {
    const deliveryId = delivery._id;
    counts[ATTEMPTS] =
      (counts[ATTEMPTS] ?? 0) +
      (await removeMatching(db.collection<AttemptClaim>(ATTEMPTS), { deliveryId }, dryRun));
    counts[OUTCOMES] =
      (counts[OUTCOMES] ?? 0) +
      (await removeMatching(db.collection<AttemptOutcomeDoc>(OUTCOMES), { deliveryId }, dryRun));
  }
  counts[DELIVERIES] = await removeMatching(deliveries, { orderNumber }, dryRun);
  return counts;
}

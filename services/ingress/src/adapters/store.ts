import {
  type CollectionIndexes,
  escapeRegex,
  GroupInserter,
  type InsertOutcome,
  isDuplicateKey,
  removeMatching,
} from "@taituri/mongo";
import type { Collection, Db, Filter } from "mongodb";

/**
 * The dispatcher's claim on sending one outbound message: `_id` the OutboundMessage.id, unique, so
 * one dispatcher alone holds it (createOutboundHandler tells the whole story). A sent message is
 * not marked here but recorded in SENT (SentRecord).
 */
export interface SendClaim {
  _id: string;
  conversationId: string;
  status: "sending" | "failed";
  leaseUntil: Date;
  /** Claims so far: 1 + take-overs. */
  attempts: number;
  /** Meta's id for the uploaded image, kept so a retry does not upload it again. */
  mediaId?: string;
  /** Meta refused the BSUID as recipient (131062): a retry sends to the phone number at once. */
  bsuidRefused?: boolean;
  error?: SendError;
  createdAt: Date;
  updatedAt: Date;
}

export interface SendError {
  /** The Graph API's HTTP status; 0 for a message refused before it reached Meta. */
  status: number;
  code?: number;
  message: string;
}

/**
 * A message Meta accepted: `_id` the outbound id (unique), with Meta's wamid. An insert of its own,
 * not an update of the claim: FerretDB runs each update as a read and a rewrite (~0.8 ms of CPU),
 * while inserts arriving together go as one statement (GroupInserter, docs/infrastructure.md).
 */
export interface SentRecord {
  _id: string;
  wamid: string;
  conversationId: string;
  at: Date;
}

/**
 * The delivery state of one message we sent, keyed by Meta's wamid. Statuses can arrive late and
 * out of order (a delivered after the read); the rank makes every update monotonic: a status only
 * replaces a lower one. Failed is terminal.
 */
export interface DeliveryState {
  _id: string;
  status: string;
  rank: number;
  at: Date;
  conversationId: string;
  errors: { code: number; title: string }[];
  updatedAt: Date;
}

export const SENDS = "ingress_outbound_sends";
/**
 * One document per take-over of an expired lease, `_id` "<outbound id>#<attempt>": its unique index
 * lets one dispatcher alone start each attempt. The `{status, leaseUntil}` filter of an update is not
 * enough on FerretDB, which checks it on a read and writes in a second statement, so two dispatchers
 * could both take the lease over and both send.
 */
export const ATTEMPTS = "ingress_outbound_attempts";
export const SENT = "ingress_outbound_sent";
export const STATUSES = "ingress_message_statuses";

export const ingressIndexes: CollectionIndexes[] = [
  // Claims, attempts and records are keyed by `_id` (unique by definition). Statuses arrive with
  // the wamid: a failed one finds its send by it.
  // The dates serve the retention sweep (`sweepExpired`), a batch at a time.
  { collection: SENDS, indexes: [{ key: { createdAt: 1 }, name: "by_created" }] },
  { collection: ATTEMPTS, indexes: [{ key: { at: 1 }, name: "by_at" }] },
  {
    collection: SENT,
    indexes: [
      { key: { wamid: 1 }, name: "wamid" },
      { key: { at: 1 }, name: "by_at" },
    ],
  },
  {
    collection: STATUSES,
    indexes: [
      { key: { conversationId: 1 }, name: "conversationId" },
      { key: { updatedAt: 1 }, name: "by_updated" },
    ],
  },
];

/** The ingress service's documents: the dispatcher's claims and records, the delivery statuses. */
export class IngressStore {
  readonly #sends: Collection<SendClaim>;
  readonly #attempts: Collection<{ _id: string; at: Date }>;
  readonly #sent: Collection<SentRecord>;
  readonly #statuses: Collection<DeliveryState>;
  readonly #claimInserts: GroupInserter<SendClaim>;
  readonly #sentInserts: GroupInserter<SentRecord>;

  /**
   * `claimIntervalMs`: the spacing of the grouped claims (GroupInserter's minIntervalMs), on each
   * reply's path; 0 by default. `recordIntervalMs`: that of the grouped sent records, which only
   * the conversation's next message waits for; 0 by default.
   */
  constructor(db: Db, options: { claimIntervalMs?: number; recordIntervalMs?: number } = {}) {
    this.#sends = db.collection<SendClaim>(SENDS);
    this.#attempts = db.collection(ATTEMPTS);
    this.#sent = db.collection<SentRecord>(SENT);
    this.#statuses = db.collection<DeliveryState>(STATUSES);
    // Claims and records of messages sent at once (other conversations, other partitions) go in one
    // insert each.
    this.#claimInserts = new GroupInserter(this.#sends, { minIntervalMs: options.claimIntervalMs ?? 0 });
    this.#sentInserts = new GroupInserter(this.#sent, { minIntervalMs: options.recordIntervalMs ?? 0 });
  }

  /** A first claim: "duplicate" when the message was claimed before (by anyone, in any state). */
  insertClaim(claim: SendClaim): Promise<InsertOutcome> {
    return this.#claimInserts.insert(claim);
  }

  findClaim(outboundId: string): Promise<SendClaim | null> {
    return this.#sends.findOne({ _id: outboundId });
  }

  findSent(outboundId: string): Promise<SentRecord | null> {
    return this.#sent.findOne({ _id: outboundId });
  }

  /** Starts take-over `attempt` of a claim (see ATTEMPTS): false when another dispatcher did first. */
  async startAttempt(outboundId: string, attempt: number, at: Date): Promise<boolean> {
    try {
      await this.#attempts.insertOne({ _id: `${outboundId}#${attempt}`, at });
      return true;
    } catch (error) {
      if (isDuplicateKey(error)) return false;
      throw error;
    }
  }

  /** The claim's new lease, for the attempt that took it over. */
  async renewLease(outboundId: string, leaseUntil: Date, attempts: number, at: Date): Promise<void> {
    await this.#sends.updateOne({ _id: outboundId }, { $set: { leaseUntil, attempts, updatedAt: at } });
  }

  /** Gives a claim that is still sending back at once: its lease ends now. */
  async releaseLease(outboundId: string, at: Date): Promise<void> {
    await this.#sends.updateOne(
      { _id: outboundId, status: "sending" },
      { $set: { leaseUntil: new Date(0), updatedAt: at } },
    );
  }

  async rememberMediaId(outboundId: string, mediaId: string, at: Date): Promise<void> {
    await this.#sends.updateOne({ _id: outboundId }, { $set: { mediaId, updatedAt: at } });
  }

  async rememberBsuidRefused(outboundId: string, at: Date): Promise<void> {
    await this.#sends.updateOne({ _id: outboundId }, { $set: { bsuidRefused: true, updatedAt: at } });
  }

  /** The message will never be sent: the claim says why, for good. */
  async markFailed(outboundId: string, error: SendError, at: Date): Promise<void> {
    await this.#sends.updateOne({ _id: outboundId }, { $set: { status: "failed", error, updatedAt: at } });
  }

  /** "duplicate" when the message was recorded sent before. */
  recordSent(record: SentRecord): Promise<InsertOutcome> {
    return this.#sentInserts.insert(record);
  }

  findSentByWamid(wamid: string): Promise<SentRecord | null> {
    return this.#sent.findOne({ wamid });
  }

  /**
   * Deletes, a batch of up to `limit` each, the claims created before `before`, the take-over
   * attempts and sent records written before it and the delivery statuses last updated before it:
   * the retention of INGRESS_RETENTION_DAYS. Safe because the retention is longer than the topics
   * keep their records (config.ts): no outbound message of a deleted claim can be delivered again
   * and sent twice. Each goes by its own date, so a sweep cut short leaves nothing the next one
   * cannot find. `examined` is the largest batch found: a full one means more may wait.
   */
  async sweepExpired(
    before: Date,
    limit: number,
  ): Promise<{ sends: number; attempts: number; sent: number; statuses: number; examined: number }> {
    let examined = 0;
    // One deleteOne per id: `$in` on `_id` scans the whole collection on FerretDB.
    const sweep = async <T extends { _id: string }>(collection: Collection<T>, filter: Filter<T>) => {
      const found = await collection
        .find(filter, { projection: { _id: 1 } })
        .limit(limit)
        .toArray();
      examined = Math.max(examined, found.length);
      let removed = 0;
      for (const { _id } of found) removed += (await collection.deleteOne({ _id } as Filter<T>)).deletedCount;
      return removed;
    };
    const attempts = await sweep(this.#attempts, { at: { $lt: before } });
    const sends = await sweep(this.#sends, { createdAt: { $lt: before } });
    const sent = await sweep(this.#sent, { at: { $lt: before } });
    const statuses = await sweep(this.#statuses, { updatedAt: { $lt: before } });
    return { sends, attempts, sent, statuses, examined };
  }

  /**
   * Writes `state` unless its message holds an equal or higher rank already: "stale" then, and
   * nothing changes.
   */
  async applyStatus(state: DeliveryState): Promise<"applied" | "stale"> {
    const { _id, ...fields } = state;
    try {
      await this.#statuses.updateOne({ _id, rank: { $lt: state.rank } }, { $set: fields }, { upsert: true });
      return "applied";
    } catch (error) {
      // The upsert's insert collided with the existing document: it holds an equal or later status.
      if (!isDuplicateKey(error)) throw error;
      return "stale";
    }
  }
}

/**
 * Deletes the conversations' outbound messages (claims, take-over attempts, sent records) and
 * delivery statuses, for `npm run erase`; with `dryRun` only counts. Returns the count per
 * collection.
 */
export async function eraseShopper(
  db: Db,
  conversationIds: string[],
  dryRun: boolean,
): Promise<Record<string, number>> {
  const sends = db.collection<SendClaim>(SENDS);
  const attempts = db.collection<{ _id: string; at: Date }>(ATTEMPTS);
  const counts: Record<string, number> = { [SENDS]: 0, [ATTEMPTS]: 0, [SENT]: 0, [STATUSES]: 0 };
  const add = (name: string, n: number) => {
    counts[name] = (counts[name] ?? 0) + n;
  };
  for (const conversationId of conversationIds) {
    // Attempts first: they are found through their claim.
    for (const claim of await sends.find({ conversationId }, { projection: { _id: 1 } }).toArray())
      add(
        ATTEMPTS,
        await removeMatching(attempts, { _id: { $regex: `^${escapeRegex(claim._id)}#` } }, dryRun),
      );
    add(SENDS, await removeMatching(sends, { conversationId }, dryRun));
    add(SENT, await removeMatching(db.collection<SentRecord>(SENT), { conversationId }, dryRun));
    add(STATUSES, await removeMatching(db.collection<DeliveryState>(STATUSES), { conversationId }, dryRun));
  }
  return counts;
}

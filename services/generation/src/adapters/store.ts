import type { CollectionIndexes } from "@taituri/mongo";
import { escapeRegex, ImageStore, isDuplicateKey, removeMatching } from "@taituri/mongo";
import { Binary, type Collection, type Db } from "mongodb";
import type { CallOutcome, ClaimStep, RoundState } from "../domain/round.ts";
import { nextStep } from "../domain/round.ts";

export interface RoundDoc {
  /** The round id: the unique `_id` index is the claim. */
  _id: string;
  conversationId: string;
  shopId: string;
  shopperId: string;
  state: RoundState;
  /** Claims so far: 1 + take-overs. */
  attempts: number;
  leaseUntil: Date;
  /** Who holds the current claim (one id per claim), so only the holder can release it. */
  owner: string;
  /** True once Kafka acknowledged the result (the result itself is in the round's result marker). */
  published: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** One provider call in the cost ledger; `_id` = "<round>#<attempt>.<call>". */
export interface CallDoc {
  _id: string;
  roundId: string;
  shopId: string;
  attempt: number;
  provider: string;
  model: string;
  size: string;
  quality: string;
  images: number;
  /** "pending" until the call returns: one left pending was cut short by a crash and may be billed. */
  outcome: CallOutcome | "pending";
  /** Whether the provider may bill it (true while pending). */
  paid: boolean;
  estimatedCents: number;
  latencyMs?: number;
  detail?: string;
  startedAt: Date;
}

export const ROUNDS = "generation_rounds";
export const CALLS = "generation_provider_calls";
/**
 * One document per take-over, `_id` "<round>#<attempt>", and one per finished round, `_id`
 * "<round>#result" holding the result: their unique `_id` lets one worker alone take each attempt
 * and one alone record the result. A `{state, leaseUntil}` filter on an update is not enough on
 * FerretDB, which checks it on a read and writes in a second statement, so two workers could both
 * match it.
 */
export const MARKERS = "generation_round_markers";

/** The files of the GridFS bucket `images` (designs); its chunks go with each file. */
export const IMAGES_FILES = "images.files";

interface MarkerDoc {
  _id: string;
  at: Date;
  state?: Exclude<RoundState, "in_progress">;
  result?: Binary;
  published?: boolean;
}

export const generationIndexes: CollectionIndexes[] = [
  // Rounds and markers are keyed by `_id` (unique by definition); this serves "rounds of a
  // conversation". The dates serve the retention sweep (`sweepExpired`), a batch at a time.
  {
    collection: ROUNDS,
    indexes: [
      { key: { conversationId: 1 }, name: "by_conversation" },
      { key: { createdAt: 1 }, name: "by_created" },
    ],
  },
  { collection: MARKERS, indexes: [{ key: { at: 1 }, name: "by_at" }] },
  { collection: IMAGES_FILES, indexes: [{ key: { uploadDate: 1 }, name: "by_upload_date" }] },
  {
    collection: CALLS,
    indexes: [
      { key: { roundId: 1 }, name: "by_round" },
      { key: { shopId: 1, startedAt: 1 }, name: "by_shop_time" },
    ],
  },
];

export type Claim =
  | { kind: "claimed"; attempt: number; leaseUntil: Date }
  | Exclude<ClaimStep, { kind: "take_over" | "finished" }>
  | { kind: "finished"; published: boolean; result: Buffer };

export interface NewRound {
  roundId: string;
  conversationId: string;
  shopId: string;
  shopperId: string;
}

/**
 * The rounds collection: every transition is one conditional single-document write (FerretDB has
 * no transactions), so two workers can never both hold a round.
 */
export class RoundStore {
  readonly rounds: Collection<RoundDoc>;
  readonly calls: Collection<CallDoc>;
  readonly markers: Collection<MarkerDoc>;

  constructor(db: Db) {
    this.rounds = db.collection<RoundDoc>(ROUNDS);
    this.calls = db.collection<CallDoc>(CALLS);
    this.markers = db.collection<MarkerDoc>(MARKERS);
  }

  /**
   * Claims the round for `owner`: inserts it (the first delivery), or takes it over when its lease
   * has expired with attempts left (a conditional update: of two racing deliveries one matches).
   * Otherwise says what the round is: finished, busy, or out of attempts.
   */
  async claim(
    round: NewRound,
    owner: string,
    now: Date,
    leaseMs: number,
    maxAttempts: number,
  ): Promise<Claim> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    try {
      await this.rounds.insertOne({
        _id: round.roundId,
        conversationId: round.conversationId,
        shopId: round.shopId,
        shopperId: round.shopperId,
        state: "in_progress",
        attempts: 1,
        leaseUntil,
        owner,
        published: false,
        createdAt: now,
        updatedAt: now,
      });
      return { kind: "claimed", attempt: 1, leaseUntil };
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
    const finished = await this.markers.findOne({ _id: resultId(round.roundId) });
    if (finished?.result) {
      // Recorded but not yet published: while the finisher's lease lives it is about to publish,
      // so wait rather than publish a second copy; after that, it died and we publish for it.
      if (!finished.published) {
        const holder = await this.rounds.findOne({ _id: round.roundId });
        if (holder && holder.leaseUntil.getTime() > now.getTime())
          return { kind: "busy", leaseUntil: holder.leaseUntil };
      }
      return {
        kind: "finished",
        published: finished.published === true,
        result: Buffer.from(finished.result.buffer),
      };
    }
    const doc = await this.rounds.findOne({ _id: round.roundId });
    if (!doc) throw new Error(`round ${round.roundId} vanished while being claimed`);
    const step = nextStep({ ...doc, state: "in_progress" }, now, maxAttempts);
    if (step.kind !== "take_over") return step as Exclude<Claim, { kind: "claimed" | "finished" }>;
    try {
      await this.markers.insertOne({ _id: `${round.roundId}#${step.attempt}`, at: now });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      // Another delivery took this attempt first and holds a fresh lease, unless it died between
      // its marker and its lease (the marker is older than a lease): then that attempt is spent,
      // and the next look may take the following one.
      const marker = await this.markers.findOne({ _id: `${round.roundId}#${step.attempt}` });
      const deadAt = (marker?.at.getTime() ?? now.getTime()) + leaseMs;
      if (deadAt <= now.getTime())
        await this.rounds.updateOne(
          { _id: round.roundId, attempts: { $lt: step.attempt } },
          { $set: { attempts: step.attempt, leaseUntil: new Date(deadAt), updatedAt: now } },
        );
      return { kind: "busy", leaseUntil: new Date(deadAt) };
    }
    await this.rounds.updateOne(
      { _id: round.roundId },
      { $set: { leaseUntil, owner, attempts: step.attempt, updatedAt: now } },
    );
    return { kind: "claimed", attempt: step.attempt, leaseUntil };
  }

  /**
   * Records the result unless another worker already did: the first to finish wins (a slow worker
   * whose lease was taken over may still finish first); false means another did.
   */
  async finish(roundId: string, state: Exclude<RoundState, "in_progress">, result: Uint8Array, now: Date) {
    try {
      await this.markers.insertOne({
        _id: resultId(roundId),
        at: now,
        state,
        result: new Binary(result),
        published: false,
      });
    } catch (error) {
      if (isDuplicateKey(error)) return false;
      throw error;
    }
    // For people and queries; the marker is what counts.
    await this.rounds.updateOne({ _id: roundId }, { $set: { state, updatedAt: now } });
    return true;
  }

  /** The recorded result, once finished. */
  async result(roundId: string): Promise<{ result: Buffer; published: boolean } | undefined> {
    const marker = await this.markers.findOne({ _id: resultId(roundId) });
    return marker?.result
      ? { result: Buffer.from(marker.result.buffer), published: marker.published === true }
      : undefined;
  }

  async markPublished(roundId: string, now: Date): Promise<void> {
    await this.markers.updateOne({ _id: resultId(roundId) }, { $set: { published: true } });
    await this.rounds.updateOne({ _id: roundId }, { $set: { published: true, updatedAt: now } });
  }

  /** Ends the owner's lease early (it failed before any paid call), so a redelivery need not wait. */
  async release(roundId: string, owner: string, now: Date): Promise<void> {
    await this.rounds.updateOne(
      { _id: roundId, owner, state: "in_progress" },
      { $set: { leaseUntil: now, updatedAt: now } },
    );
  }

  load(roundId: string): Promise<RoundDoc | null> {
    return this.rounds.findOne({ _id: roundId });
  }

  /** Writes the ledger entry before the call, so a crash mid-call still leaves it counted. */
  async callStarted(call: Omit<CallDoc, "outcome" | "paid">): Promise<void> {
    await this.calls.insertOne({ ...call, outcome: "pending", paid: true });
  }

  async callEnded(
    id: string,
    ended: {
      outcome: CallOutcome;
      paid: boolean;
      latencyMs: number;
      estimatedCents: number;
      detail?: string;
    },
  ): Promise<void> {
    await this.calls.updateOne({ _id: id }, { $set: ended });
  }

  /**
   * Deletes, a batch of up to `limit` each, the rounds created before `before`, the markers
   * (claims and results) written before it and the designs stored before it (GridFS, chunks
   * included): the retention of GENERATION_RETENTION_DAYS. Each goes by its own date, so a sweep
   * cut short leaves nothing the next one cannot find. Safe because the retention is longer than
   * the topics keep their records, so no request for such a round can be delivered again, and
   * than a design link lives (config.ts). The cost ledger stays: it is the accounts' record.
   * `examined` is the largest batch found: a full one means more may wait.
   */
  async sweepExpired(
    images: ImageStore,
    before: Date,
    limit: number,
  ): Promise<{ rounds: number; markers: number; images: number; examined: number }> {
    // One deleteOne per id: `$in` on `_id` scans the whole collection on FerretDB.
    const deleteEach = async (collection: Collection<RoundDoc> | Collection<MarkerDoc>, ids: string[]) => {
      let removed = 0;
      for (const _id of ids) removed += (await collection.deleteOne({ _id })).deletedCount;
      return removed;
    };
    const markerIds = await this.markers
      .find({ at: { $lt: before } }, { projection: { _id: 1 } })
      .limit(limit)
      .toArray();
    const markers = await deleteEach(
      this.markers,
      markerIds.map((m) => m._id),
    );
    const designs = await images.removeStoredBefore(before, limit);
    const roundIds = await this.rounds
      .find({ createdAt: { $lt: before } }, { projection: { _id: 1 } })
      .limit(limit)
      .toArray();
    const rounds = await deleteEach(
      this.rounds,
      roundIds.map((r) => r._id),
    );
    return {
      rounds,
      markers,
      images: designs.removed,
      examined: Math.max(markerIds.length, designs.examined, roundIds.length),
    };
  }

  /** The ledger of one round (tests, support). */
  callsOf(roundId: string): Promise<CallDoc[]> {
    return this.calls.find({ roundId }).sort({ startedAt: 1 }).toArray();
  }
}

const resultId = (roundId: string) => `${roundId}#result`;

/**
 * Deletes everything of the conversations' rounds, for `npm run erase`: the rounds, their claim and
 * result markers, their calls in the cost ledger and their designs (GridFS bucket `images`), all
 * found by the conversation id their ids begin with (`<conversation>/j<n>/r<n>…`); with `dryRun`
 * only counts. The ledger's calls go too: their ids name the shopper, and the provider's invoice
 * is the record of what was billed.
 */
export async function eraseShopper(
  db: Db,
  conversationIds: string[],
  dryRun: boolean,
): Promise<Record<string, number>> {
  const store = new RoundStore(db);
  const images = new ImageStore(db);
  const counts: Record<string, number> = { [ROUNDS]: 0, [MARKERS]: 0, [CALLS]: 0, "images (GridFS)": 0 };
  const add = (name: string, n: number) => {
    counts[name] = (counts[name] ?? 0) + n;
  };
  for (const conversationId of conversationIds) {
    const under = { $regex: `^${escapeRegex(`${conversationId}/`)}` };
    add(CALLS, await removeMatching(store.calls, { roundId: under }, dryRun));
    add(MARKERS, await removeMatching(store.markers, { _id: under }, dryRun));
    add(ROUNDS, await removeMatching(store.rounds, { conversationId }, dryRun));
    add("images (GridFS)", await images.removeUnder(`${conversationId}/`, dryRun));
  }
  return counts;
}

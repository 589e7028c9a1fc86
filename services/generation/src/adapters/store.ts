import type { CollectionIndexes } from "@taituri/mongo";
import { isDuplicateKey } from "@taituri/mongo";
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
  /** The encoded generation.v1.GenerationResult, once finished. */
  result?: Binary;
  /** True once Kafka acknowledged the result. */
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

export const generationIndexes: CollectionIndexes[] = [
  // Rounds are keyed by `_id` (unique by definition); this one serves "rounds by conversation".
  { collection: ROUNDS, indexes: [{ key: { conversationId: 1 }, name: "by_conversation" }] },
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

  constructor(db: Db) {
    this.rounds = db.collection<RoundDoc>(ROUNDS);
    this.calls = db.collection<CallDoc>(CALLS);
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
    const taken = await this.rounds.findOneAndUpdate(
      { _id: round.roundId, state: "in_progress", leaseUntil: { $lte: now }, attempts: { $lt: maxAttempts } },
      { $set: { leaseUntil, owner, updatedAt: now }, $inc: { attempts: 1 } },
      { returnDocument: "after" },
    );
    if (taken) return { kind: "claimed", attempt: taken.attempts, leaseUntil };
    const doc = await this.rounds.findOne({ _id: round.roundId });
    if (!doc) throw new Error(`round ${round.roundId} vanished while being claimed`);
    const step = nextStep(doc, now, maxAttempts);
    if (step.kind === "finished") return { ...step, result: Buffer.from(doc.result?.buffer ?? []) };
    // A take-over that lost the race to another delivery: that one holds a fresh lease now.
    if (step.kind === "take_over") return { kind: "busy", leaseUntil: doc.leaseUntil };
    return step;
  }

  /**
   * Records the result if the round is still in progress. The first worker to finish wins (a
   * slow worker whose lease was taken over may still finish first); false means another did.
   */
  async finish(roundId: string, state: Exclude<RoundState, "in_progress">, result: Uint8Array, now: Date) {
    const updated = await this.rounds.updateOne(
      { _id: roundId, state: "in_progress" },
      { $set: { state, result: new Binary(result), updatedAt: now } },
    );
    return updated.modifiedCount === 1;
  }

  async markPublished(roundId: string, now: Date): Promise<void> {
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

  /** The ledger of one round (tests, support). */
  callsOf(roundId: string): Promise<CallDoc[]> {
    return this.calls.find({ roundId }).sort({ startedAt: 1 }).toArray();
  }
}

import { type CollectionIndexes, GroupInserter } from "@taituri/mongo";
import type { Binary, Collection, Db } from "mongodb";
import type { Conversation } from "../domain/machine.ts";

/** An event to publish, made durable in the same document write as the state change that caused it. */
export interface OutboxEntry {
  id: string;
  topic: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

export interface StoredOutboxEntry extends Omit<OutboxEntry, "value"> {
  value: Binary | Buffer;
}

export interface ConversationDoc {
  /** The conversation id, "<phone_number_id>:<shopper id>". */
  _id: string;
  conversation: Conversation;
  phoneNumberId: string;
  shopperId: string;
  /** Bumped by every write; a write that expects another version lost a race and is redone. */
  version: number;
  /**
   * Inbound events whose effect is already in this document. Written in the same update as the
   * state, so a crash can never leave the state changed but the event unmarked.
   */
  appliedEventIds: string[];
  /**
   * The events this version produced (and any earlier ones not known to be published), written
   * with it and published after it. Not emptied afterwards: the next version leaves out what its
   * writer knows was published, and a republished entry is dropped by its consumer's claim.
   */
  outbox: StoredOutboxEntry[];
  /** Pending watchdogs, written with the state that needs them so a crash cannot lose one. */
  timers: Timer[];
  /** The earliest timer's due time (null: none), indexed for the poller. */
  nextTimerAt: Date | null;
  /**
   * Whether any timer is pending. The poller asks for `true` first: an equality FerretDB hands to
   * its storage, where a range on `nextTimerAt` alone would make it read every conversation.
   */
  timersPending: boolean;
  /** When the shopper last wrote: the start of WhatsApp's 24-hour window for free-form replies. */
  lastInboundAt?: Date;
  /**
   * The W3C traceparent of the trace that delivered the latest designs. Each message is a trace of
   * its own; later ones (choosing, buying) link to this one, so the journey's traces hang together.
   */
  designsTrace?: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface Timer {
  id: string;
  roundId: string;
  dueAt: Date;
}

/**
 * The first record of an inbound event. Idempotency key: InboundEvent.event_id (the wamid), enforced
 * by the unique `_id` index of `conversation_inbound_claims`. Whether the event's effect is durable
 * is recorded apart, in `conversation_applied_events` (AppliedDoc), so a redelivery after that is
 * dropped with one more lookup.
 */
interface ClaimDoc {
  _id: string;
  conversationId: string;
  claimedAt: Date;
  /** Set by versions before `conversation_applied_events`: such a claim counts as applied. */
  appliedAt?: Date;
}

/**
 * An inbound event whose effect is durable in its conversation: `_id` the event id (unique), written
 * after the conversation document. An insert, not an update of the claim: FerretDB runs a batch of
 * inserts as one statement (~0.1 ms of CPU per event in batches of 10) but every update alone as a
 * read and a rewrite (~0.8 ms each, batched or not), measured in docs/infrastructure.md.
 */
interface AppliedDoc {
  _id: string;
  conversationId: string;
  at: Date;
}

export const CONVERSATIONS = "conversation_conversations";
export const CLAIMS = "conversation_inbound_claims";
export const APPLIED = "conversation_applied_events";
export const VERSIONS = "conversation_versions";

/** How many applied event ids a conversation remembers; a redelivery older than that is caught by the claim. */
const APPLIED_MEMORY = 50;

export const conversationIndexes: CollectionIndexes[] = [
  { collection: CLAIMS, indexes: [{ key: { conversationId: 1 }, name: "conversationId" }] },
  {
    collection: CONVERSATIONS,
    indexes: [
      { key: { updatedAt: 1 }, name: "updatedAt" },
      { key: { timersPending: 1, nextTimerAt: 1 }, name: "timersPending_nextTimerAt" },
    ],
  },
];

export type ClaimResult = "new" | "applied" | "unfinished";

/**
 * Recording an event applied is not on the message's path (the conversation document already holds
 * the event among its latest ones), so the records are queued and inserted together, unordered. A
 * lost one matters only to a redelivery after the conversation's memory of the event (APPLIED_MEMORY
 * newer events) is gone; a record already there (a redelivered event) fails alone.
 */
class DeferredMarks {
  readonly #applied: Collection<AppliedDoc>;
  readonly #delayMs: number;
  #docs: AppliedDoc[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(applied: Collection<AppliedDoc>, delayMs: number) {
    this.#applied = applied;
    this.#delayMs = delayMs;
  }

  markApplied(eventId: string, conversationId: string, at: Date): void {
    this.#docs.push({ _id: eventId, conversationId, at });
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#delayMs);
  }

  /** Sends what is queued; resolves when it (and any flush before it) is written. */
  flush(): Promise<void> {
    const docs = this.#docs;
    this.#docs = [];
    this.#flushing = this.#flushing.then(async () => {
      // Best effort by design (see above): a failure is not retried, and a duplicate is expected.
      if (docs.length > 0) await this.#applied.insertMany(docs, { ordered: false }).catch(() => {});
    });
    return this.#flushing;
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}

/**
 * The claim on one version of a conversation: `_id` "<conversation id>#<version>", unique, so one
 * writer alone may produce each version. It carries the whole write, so a writer that dies between
 * its claim and its update is finished by the next one to try that version.
 *
 * Why not only the `{_id, version}` filter of the update: FerretDB evaluates an update's filter on
 * a read and then replaces the document by `_id` in a second statement, so two writers holding the
 * same version can both "match" and the later one silently undoes the earlier (measured: 2 to 5 of 5
 * concurrent conditional updates succeeded). A unique index is enforced by the storage itself.
 */
interface VersionDoc {
  _id: string;
  conversationId: string;
  write: Partial<ConversationDoc>;
  at: Date;
}

export class ConversationStore {
  readonly #conversations: Collection<ConversationDoc>;
  readonly #claims: Collection<ClaimDoc>;
  /**
   * Inserts of events handled at once (other conversations, other partitions) go together: claims,
   * new conversations, version claims. Updates cannot (FerretDB runs each alone).
   */
  readonly #claimInserts: GroupInserter<ClaimDoc>;
  readonly #conversationInserts: GroupInserter<ConversationDoc>;
  readonly #versionInserts: GroupInserter<VersionDoc>;
  readonly #applied: Collection<AppliedDoc>;
  readonly #versions: Collection<VersionDoc>;
  readonly #deferred: DeferredMarks;
  /**
   * The latest version of each conversation this store read or wrote, most recent last, at most
   * `cacheSize`. A guess, not a truth: another replica may have written since, and then the commit
   * built on it loses the version claim and the caller reloads (see ConversationHandler). It saves a
   * read per event of a conversation this process keeps handling.
   */
  readonly #cache = new Map<string, ConversationDoc>();
  readonly #cacheSize: number;

  /**
   * `deferMs`: how long applied-marks wait to be sent together (see DeferredMarks); `cacheSize`: how
   * many conversations `cached` remembers (0: none); `insertIntervalMs`: the grouped inserts'
   * spacing (GroupInserter).
   */
  constructor(db: Db, options: { deferMs?: number; cacheSize?: number; insertIntervalMs?: number } = {}) {
    this.#cacheSize = options.cacheSize ?? 10_000;
    this.#conversations = db.collection<ConversationDoc>(CONVERSATIONS);
    this.#claims = db.collection<ClaimDoc>(CLAIMS);
    this.#applied = db.collection<AppliedDoc>(APPLIED);
    this.#versions = db.collection<VersionDoc>(VERSIONS);
    const grouped = { minIntervalMs: options.insertIntervalMs ?? 0 };
    this.#claimInserts = new GroupInserter(this.#claims, grouped);
    this.#conversationInserts = new GroupInserter(this.#conversations, grouped);
    this.#versionInserts = new GroupInserter(this.#versions, grouped);
    this.#deferred = new DeferredMarks(this.#applied, options.deferMs ?? 20);
  }

  /** Writes what is queued; the service calls it on shutdown, tests to observe the records. */
  flush(): Promise<void> {
    return this.#deferred.flush();
  }

  close(): Promise<void> {
    return this.#deferred.close();
  }

  /**
   * "new": first delivery. "applied": seen and done. "unfinished": claimed before, but not recorded
   * applied (the process stopped first, or the record is still queued); the conversation document
   * says whether the effect happened.
   */
  async claim(eventId: string, conversationId: string, at: Date): Promise<ClaimResult> {
    if ((await this.#claimInserts.insert({ _id: eventId, conversationId, claimedAt: at })) === "inserted")
      return "new";
    if (await this.#applied.findOne({ _id: eventId }, { projection: { _id: 1 } })) return "applied";
    const existing = await this.#claims.findOne({ _id: eventId });
    return existing?.appliedAt ? "applied" : "unfinished";
  }

  /** Queued (DeferredMarks): the event's effect is already durable in its conversation. */
  markApplied(eventId: string, conversationId: string, at: Date): void {
    this.#deferred.markApplied(eventId, conversationId, at);
  }

  /** The conversation as stored now; remembered for `cached`. */
  async load(conversationId: string): Promise<ConversationDoc | null> {
    const doc = await this.#conversations.findOne({ _id: conversationId });
    this.#remember(conversationId, doc ?? undefined);
    return doc;
  }

  /**
   * The version this store last read or wrote, if it remembers one: possibly stale (see #cache), so
   * only for deciding what to write, never for deciding whether an event was already applied.
   */
  cached(conversationId: string): ConversationDoc | undefined {
    const doc = this.#cache.get(conversationId);
    if (doc) this.#remember(conversationId, doc);
    return doc;
  }

  #remember(conversationId: string, doc: ConversationDoc | undefined): void {
    this.#cache.delete(conversationId);
    if (!doc || this.#cacheSize === 0) return;
    this.#cache.set(conversationId, doc);
    if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value ?? "");
  }

  /**
   * Writes the new state, marks the event applied and stores its pending outgoing events, all in one
   * single-document write guarded by the version read. Returns the new version, or undefined when
   * another writer got there first; the caller reloads and decides again.
   */
  async commit(
    previous: ConversationDoc | null,
    next: {
      conversationId: string;
      phoneNumberId: string;
      shopperId: string;
      conversation: Conversation;
      timers: Timer[];
      lastInboundAt?: Date;
      designsTrace?: string;
    },
    eventId: string,
    outbox: StoredOutboxEntry[],
    at: Date,
  ): Promise<number | undefined> {
    const appliedEventIds = [...(previous?.appliedEventIds ?? []), eventId].slice(-APPLIED_MEMORY);
    // The caller decides which of the previous version's entries still need publishing.
    const pending = outbox;
    const nextTimerAt = next.timers.reduce<Date | null>(
      (min, t) => (min === null || t.dueAt < min ? t.dueAt : min),
      null,
    );
    const timing = {
      timers: next.timers,
      nextTimerAt,
      timersPending: next.timers.length > 0,
      ...(next.lastInboundAt ? { lastInboundAt: next.lastInboundAt } : {}),
      ...(next.designsTrace ? { designsTrace: next.designsTrace } : {}),
    };
    if (!previous) {
      const doc: ConversationDoc = {
        _id: next.conversationId,
        conversation: next.conversation,
        phoneNumberId: next.phoneNumberId,
        shopperId: next.shopperId,
        version: 1,
        appliedEventIds,
        outbox: pending,
        ...timing,
        createdAt: at,
        updatedAt: at,
      };
      // A duplicate: another writer created it first; the caller reloads and decides again.
      const created = await this.#conversationInserts.insert(doc);
      this.#remember(next.conversationId, created === "inserted" ? doc : undefined);
      return created === "inserted" ? 1 : undefined;
    }
    const version = previous.version + 1;
    const write: Partial<ConversationDoc> = {
      conversation: next.conversation,
      appliedEventIds,
      outbox: pending,
      ...timing,
      updatedAt: at,
      version,
    };
    const claim = `${previous._id}#${version}`;
    const claimed = await this.#versionInserts.insert({
      _id: claim,
      conversationId: previous._id,
      write,
      at,
    });
    if (claimed === "duplicate") {
      this.#remember(previous._id, undefined);
      // Another writer owns this version. Finish its write in case it died before making it (the
      // same content, so doing it twice is harmless), then let the caller reload and decide again.
      const winner = await this.#versions.findOne({ _id: claim });
      if (winner) {
        await this.#conversations.updateOne(
          { _id: previous._id, version: previous.version },
          { $set: winner.write },
        );
      }
      return undefined;
    }
    // Ours alone: whoever else writes this version writes exactly this (see VersionDoc).
    await this.#conversations.updateOne({ _id: previous._id, version: previous.version }, { $set: write });
    this.#remember(previous._id, { ...previous, ...write });
    return version;
  }

  /** Conversations with a timer due by `now`, for the watchdog poller. */
  due(now: Date, limit: number): Promise<ConversationDoc[]> {
    return this.#conversations
      .find({ timersPending: true, nextTimerAt: { $lte: now } })
      .limit(limit)
      .toArray();
  }

  /**
   * Conversations still generating whose deadline timer was due before `before`: rounds the
   * watchdog should have ended. A generating conversation always has its deadline timer pending,
   * so the query is the equality on `timersPending` FerretDB hands to its storage; the rest is
   * read here from the few documents with a timer, not from every conversation.
   */
  async countStuckGenerating(before: Date): Promise<number> {
    const pending = await this.#conversations
      .find({ timersPending: true }, { projection: { "conversation.state": 1, nextTimerAt: 1 } })
      .toArray();
    return pending.filter(
      (d) => d.conversation?.state === "generating" && d.nextTimerAt !== null && d.nextTimerAt < before,
    ).length;
  }
}

/** Outbox entries as stored come back as BSON Binary; the producer wants bytes. */
export function outboxValue(entry: StoredOutboxEntry): Buffer {
  const value = entry.value;
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer);
}

import {
  type CollectionIndexes,
  escapeRegex,
  GroupInserter,
  type OutboxEntry,
  outboxValue,
  removeMatching,
  type StoredOutboxEntry,
} from "@taituri/mongo";
import type { Collection, Db } from "mongodb";
import type { Conversation } from "../domain/machine.ts";
import {
  announceForget,
  awaitForgotten,
  CACHE_EPOCHS,
  FORGET_TIMEOUT_MS,
  type ForgetReport,
} from "./cache-epochs.ts";

export {
  CACHE_EPOCHS,
  FORGET_TIMEOUT_MS,
  type ForgetReport,
  type OutboxEntry,
  outboxValue,
  type StoredOutboxEntry,
};

/**
 * A conversation as the service works with it. Stored as its head document in
 * `conversation_conversations`, which may be a few versions behind: the versions since live in
 * their claims (VersionDoc) and `ConversationStore.load` applies them (see HEAD_EVERY). The
 * timers on a head are always the latest.
 */
export interface ConversationDoc {
  /**
   * The conversation id: the Kafka key of the shopper's first message, "<phone_number_id>:<BSUID,
   * or phone number>", kept for good; later ids of the same shopper lead here (IdentityDoc).
   */
  _id: string;
  conversation: Conversation;
  phoneNumberId: string;
  /** The shopper's id at the first message: stable, for the limiter's per-shopper subject. */
  shopperId: string;
  /**
   * Where replies go: the shopper's phone number and BSUID as last seen. Either may be absent (a
   * shopper who hides their number has only the BSUID); a number change replaces both.
   */
  contact?: Contact;
  /** Bumped by every write (see VersionDoc); a write built on an older one loses and is redone. */
  version: number;
  /**
   * The event that created the conversation (version 1). Its insert, unique by `_id`, is that
   * event's claim; every later event is claimed by its VersionDoc. Kept for good, unlike
   * `appliedEventIds`, so a redelivery of it is known however late it comes.
   */
  firstEventId?: string;
  /**
   * The latest inbound events whose effect is already in this document (at most APPLIED_MEMORY).
   * Written in the same update as the state, so a crash can never leave the state changed but the
   * event unmarked. Older ones are known by their VersionDoc.
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

export interface Contact {
  waId?: string;
  userId?: string;
}

/**
 * One of a shopper's ids, claimed by the conversation it belongs to. `_id`
 * "<phone_number_id>:wa:<phone number>" or "<phone_number_id>:u:<BSUID>", unique: the first
 * conversation to claim an id keeps it. A message whose Kafka key is not a conversation of its own
 * (a BSUID new after a number change, whose notice named the new phone number) is led by them to
 * the shopper's conversation (ConversationStore.route).
 */
interface IdentityDoc {
  _id: string;
  conversationId: string;
  at: Date;
}

export const identityKey = (phoneNumberId: string, kind: "wa" | "u", id: string) =>
  `${phoneNumberId}:${kind}:${id}`;

/** The claims a shopper's ids make, BSUID first (the id every message webhook carries). */
export function identityKeys(phoneNumberId: string, contact: Contact): string[] {
  return [
    ...(contact.userId ? [identityKey(phoneNumberId, "u", contact.userId)] : []),
    ...(contact.waId ? [identityKey(phoneNumberId, "wa", contact.waId)] : []),
  ];
}

export interface Timer {
  id: string;
  roundId: string;
  dueAt: Date;
}

export const CONVERSATIONS = "conversation_conversations";
export const VERSIONS = "conversation_versions";
export const IDENTITIES = "conversation_identities";

/** How many applied event ids a conversation remembers; older ones are found by their VersionDoc. */
const APPLIED_MEMORY = 50;

/**
 * A conversation's document (its head) is rewritten by every version whose timers differ from
 * the version before, and by every HEAD_EVERY-th; the other versions live in their claim alone
 * (VersionDoc) and `load` applies them. Why: FerretDB runs an update as a read and a rewrite, the
 * one statement per message it cannot group; without it the conversation benchmark spent 0.5–0.6
 * ms less CPU per message at 500 messages/s (bench/README.md).
 */
const HEAD_EVERY = 8;

/** Whether two versions of a conversation have the same pending timers. */
function sameTimers(a: ConversationDoc, b: ConversationDoc): boolean {
  return (
    a.timers.length === b.timers.length &&
    a.timers.every((t, i) => {
      const u = b.timers[i];
      return u !== undefined && t.id === u.id && t.dueAt.getTime() === u.dueAt.getTime();
    })
  );
}

export const conversationIndexes: CollectionIndexes[] = [
  {
    collection: CONVERSATIONS,
    indexes: [
      { key: { updatedAt: 1 }, name: "updatedAt" },
      { key: { timersPending: 1, nextTimerAt: 1 }, name: "timersPending_nextTimerAt" },
    ],
  },
  {
    collection: VERSIONS,
    // Sparse: version claims written before they carried their event have none (on MongoDB a
    // plain unique index would take all of those for one duplicate missing value).
    indexes: [{ key: { eventId: 1 }, name: "eventId", unique: true, sparse: true }],
  },
];

/** Whether the conversation has applied the event (for the events it remembers, see APPLIED_MEMORY). */
export function hasApplied(doc: ConversationDoc, eventId: string): boolean {
  return doc.firstEventId === eventId || doc.appliedEventIds.includes(eventId);
}

/**
 * What a commit did: the version it wrote; "conflict", another writer holds the conversation's next
 * version (reload and decide again); or "duplicate", the event is applied already, by an earlier
 * version (whose write the commit finished, were it left unfinished).
 */
export type CommitOutcome = number | "conflict" | "duplicate";

/** What a commit writes as the conversation's next version. */
export interface NextVersion {
  conversationId: string;
  phoneNumberId: string;
  shopperId: string;
  contact: Contact;
  conversation: Conversation;
  timers: Timer[];
  lastInboundAt?: Date;
  designsTrace?: string;
}

/**
 * The claim on one version of a conversation and on the event it applies: `_id` "<conversation
 * id>#<version>", unique, so one writer alone may produce each version; `eventId`, unique, so each
 * event is applied by one version alone. It is the event's idempotency key (InboundEvent.event_id,
 * the wamid, or the ids derived for results, payment events and timers; the first event of a
 * conversation is claimed by the conversation's own insert, see `firstEventId`). It carries the
 * whole write, and is what makes it durable: the head is rewritten only now and then (HEAD_EVERY),
 * and a writer that dies before its head write loses nothing; the next load writes what the head
 * must show (the timers).
 *
 * Why not only the `{_id, version}` filter of the update: FerretDB evaluates an update's filter on
 * a read and then replaces the document by `_id` in a second statement, so two writers holding the
 * same version can both "match" and the later one silently undoes the earlier (measured: 2 to 5 of 5
 * concurrent conditional updates succeeded). A unique index is enforced by the storage itself.
 *
 * Why the event's claim is here and not a record of its own: one insert per event instead of three
 * (a claim before, the version's, an applied record after), and one grouped insert less to wait for
 * on each message's path. FerretDB spends about as much CPU on a statement as on its rows
 * (docs/infrastructure.md).
 */
interface VersionDoc {
  _id: string;
  conversationId: string;
  eventId: string;
  write: Partial<ConversationDoc>;
  at: Date;
}

export class ConversationStore {
  readonly #conversations: Collection<ConversationDoc>;
  /**
   * Inserts of events handled at once (other conversations, other partitions) go together: new
   * conversations, version claims. Updates cannot (FerretDB runs each alone).
   */
  readonly #conversationInserts: GroupInserter<ConversationDoc>;
  readonly #versionInserts: GroupInserter<VersionDoc>;
  readonly #versions: Collection<VersionDoc>;
  readonly #identities: Collection<IdentityDoc>;
  readonly #identityInserts: GroupInserter<IdentityDoc>;
  /** Kafka keys already resolved to their conversation (see route). */
  readonly #routes = new Map<string, string>();
  /**
   * The latest version of each conversation this store read or wrote, most recent last, at most
   * `cacheSize`. A guess, not a truth: another replica may have written since, and then the commit
   * built on it loses the version claim and the caller reloads (see ConversationHandler). It saves a
   * read per event of a conversation this process keeps handling.
   */
  readonly #cache = new Map<string, ConversationDoc>();
  readonly #cacheSize: number;
  /**
   * Bumped by `forgetCached`. A version read or written before (`#readIn`) may be of a
   * conversation deleted since, and is no ground for a commit: with its version claims gone, the
   * claim of the next one would succeed and write the deleted state back.
   */
  #epoch = 0;
  readonly #readIn = new WeakMap<ConversationDoc, number>();
  /** Commits in flight, each settled; `forgetCached` waits for those begun before it. */
  readonly #committing = new Set<Promise<void>>();
  readonly #db: Db;

  /**
   * `cacheSize`: how many conversations `cached` remembers (0: none); `insertIntervalMs`: the
   * grouped inserts' spacing (GroupInserter).
   */
  constructor(db: Db, options: { cacheSize?: number; insertIntervalMs?: number } = {}) {
    this.#cacheSize = options.cacheSize ?? 10_000;
    this.#db = db;
    this.#conversations = db.collection<ConversationDoc>(CONVERSATIONS);
    this.#versions = db.collection<VersionDoc>(VERSIONS);
    this.#identities = db.collection<IdentityDoc>(IDENTITIES);
    const grouped = { minIntervalMs: options.insertIntervalMs ?? 0 };
    this.#identityInserts = new GroupInserter(this.#identities, grouped);
    this.#conversationInserts = new GroupInserter(this.#conversations, grouped);
    this.#versionInserts = new GroupInserter(this.#versions, grouped);
  }

  /**
   * The conversation as stored now: its document, brought up to its latest version by the version
   * claims written since (see HEAD_EVERY); remembered for `cached`.
   */
  async load(conversationId: string): Promise<ConversationDoc | null> {
    const epoch = this.#epoch;
    const head = await this.#conversations.findOne({ _id: conversationId });
    const doc = head ? await this.#catchUp(head) : null;
    this.#remember(conversationId, doc ?? undefined, epoch);
    return doc;
  }

  /**
   * Forgets every conversation and route this store remembers, because conversations were
   * deleted (CacheForgetWatcher). Returns once the commits begun before have settled: a commit
   * built on a forgotten version is refused from now on (see `#epoch`), but one past that check
   * may still land its write, which the erase's second pass, run after this returns, deletes.
   */
  async forgetCached(): Promise<void> {
    this.#epoch += 1;
    this.#cache.clear();
    this.#routes.clear();
    await Promise.all([...this.#committing]);
  }

  /**
   * The head with every later version's write applied in order, each found by its claim's `_id`
   * (fewer than HEAD_EVERY reads, plus the one that finds none, unless a writer died before its
   * head write). What a dead writer left unwritten is written here: timers, so that the watchdog
   * poller, which reads heads alone, sees them, and a head HEAD_EVERY or more versions behind.
   */
  async #catchUp(head: ConversationDoc): Promise<ConversationDoc> {
    let doc = head;
    for (;;) {
      const next = await this.#versions.findOne({ _id: `${head._id}#${doc.version + 1}` });
      if (!next) break;
      doc = { ...doc, ...next.write };
    }
    if (!sameTimers(head, doc) || doc.version - head.version >= HEAD_EVERY) await this.#writeHead(doc);
    return doc;
  }

  /**
   * Writes the conversation's state at `doc.version` to its head document, unless the head is that
   * new already. A head only moves forward in the filter; FerretDB's update is a read and then a
   * rewrite, so two racing head writes may still leave the older one, which the next load's
   * catch-up corrects (state) and the next write with timers overwrites (timers).
   */
  async #writeHead(doc: ConversationDoc): Promise<void> {
    const {
      _id,
      createdAt: _createdAt,
      phoneNumberId: _phone,
      shopperId: _shopper,
      firstEventId: _first,
      ...state
    } = doc;
    await this.#conversations.updateOne({ _id, version: { $lt: doc.version } }, { $set: state });
  }

  /**
   * The conversation a shopper's message belongs to, for a Kafka key this process has not resolved
   * yet: every id of the message is claimed for the key, and an id another conversation holds
   * leads there (the BSUID's claim first, `ids` order). The claims go first, as grouped inserts:
   * a new shopper's all go in, and nothing is read. Only a held id is read, by its `_id` alone
   * (FerretDB reads a whole collection for `$in`, docs/infrastructure.md). Claims this call made
   * for the key are then pointed at the conversation it leads to, so that a later message under
   * only those ids finds it too; until then (a moment, and only for this shopper's first message
   * under a new key) another process could read them as the key's own.
   */
  async route(key: string, ids: string[], at: Date): Promise<string> {
    const known = this.#routes.get(key);
    if (known) return known;
    const epoch = this.#epoch;
    const outcomes = await Promise.all(
      ids.map((id) => this.#identityInserts.insert({ _id: id, conversationId: key, at })),
    );
    const held = ids.filter((_, i) => outcomes[i] === "duplicate");
    const owners = await Promise.all(held.map((id) => this.#identities.findOne({ _id: id })));
    const target = owners.find((owner) => owner && owner.conversationId !== key)?.conversationId ?? key;
    if (target !== key) {
      const claimedHere = ids.filter((_, i) => outcomes[i] === "inserted");
      await Promise.all(
        claimedHere.map((id) =>
          this.#identities.updateOne({ _id: id, conversationId: key }, { $set: { conversationId: target } }),
        ),
      );
    }
    if (epoch !== this.#epoch) return target;
    this.#routes.set(key, target);
    if (this.#routes.size > this.#cacheSize) this.#routes.delete(this.#routes.keys().next().value ?? "");
    return target;
  }

  /** Claims ids for a conversation; an id another conversation claimed first stays theirs. */
  async claim(ids: string[], conversationId: string, at: Date): Promise<void> {
    await Promise.all(ids.map((id) => this.#identityInserts.insert({ _id: id, conversationId, at })));
  }

  /**
   * The version this store last read or wrote, if it remembers one: possibly stale (see #cache), so
   * only for deciding what to write, never for deciding whether an event was already applied.
   */
  cached(conversationId: string): ConversationDoc | undefined {
    const doc = this.#cache.get(conversationId);
    if (doc) {
      this.#cache.delete(conversationId);
      this.#cache.set(conversationId, doc);
    }
    return doc;
  }

  /** Remembers `doc` as read or written in `epoch`; not at all if a forget has come since. */
  #remember(conversationId: string, doc: ConversationDoc | undefined, epoch: number): void {
    if (doc) this.#readIn.set(doc, epoch);
    if (epoch !== this.#epoch) return;
    this.#cache.delete(conversationId);
    if (!doc || this.#cacheSize === 0) return;
    this.#cache.set(conversationId, doc);
    if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value ?? "");
  }

  /**
   * Writes the new state, marks the event applied and stores its pending outgoing events, all in one
   * single-document write guarded by the version read, after claiming that version and the event
   * (VersionDoc). `afterClaim` runs between the claim and the write (crash tests). See CommitOutcome.
   * A `previous` this store read before its latest `forgetCached` is a "conflict" (reload).
   */
  commit(
    previous: ConversationDoc | null,
    next: NextVersion,
    eventId: string,
    outbox: StoredOutboxEntry[],
    at: Date,
    afterClaim?: () => void,
  ): Promise<CommitOutcome> {
    const running = this.#commit(previous, next, eventId, outbox, at, afterClaim);
    const settled = running.then(
      () => undefined,
      () => undefined,
    );
    this.#committing.add(settled);
    void settled.then(() => this.#committing.delete(settled));
    return running;
  }

  async #commit(
    previous: ConversationDoc | null,
    next: NextVersion,
    eventId: string,
    outbox: StoredOutboxEntry[],
    at: Date,
    afterClaim?: () => void,
  ): Promise<CommitOutcome> {
    const epoch = this.#epoch;
    if (previous && (this.#readIn.get(previous) ?? epoch) !== epoch) return "conflict";
    if (previous && hasApplied(previous, eventId)) return "duplicate";
    const appliedEventIds = [...(previous?.appliedEventIds ?? []), eventId].slice(-APPLIED_MEMORY);
    // The caller decides which of the previous version's entries still need publishing.
    const pending = outbox;
    const nextTimerAt = next.timers.reduce<Date | null>(
      (min, t) => (min === null || t.dueAt < min ? t.dueAt : min),
      null,
    );
    const timing = {
      contact: next.contact,
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
        firstEventId: eventId,
        appliedEventIds,
        outbox: pending,
        ...timing,
        createdAt: at,
        updatedAt: at,
      };
      // A duplicate: the conversation exists (another writer created it first, or this very event
      // did); the caller reloads, and the stored conversation says which.
      const created = await this.#conversationInserts.insert(doc);
      this.#remember(next.conversationId, created === "inserted" ? doc : undefined, epoch);
      return created === "inserted" ? 1 : "conflict";
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
      eventId,
      write,
      at,
    });
    if (claimed === "duplicate") {
      this.#remember(previous._id, undefined, epoch);
      // Another writer owns this version, or an earlier version applied this event (the two unique
      // indexes; the error does not say which). The version's owner is finished in case it died
      // before writing (the same content, so doing it twice is harmless). If no one owns it, the
      // event's claim is what refused us: it was applied by a version no later than `previous`
      // (a later one would need this one to exist), so it is in the conversation already.
      const winner = await this.#versions.findOne({ _id: claim });
      if (!winner) return "duplicate";
      // The winner's write is durable in its claim; its head write may not have happened. Rare
      // enough (a crash, a stale guess) to write the head whatever the winner changed.
      await this.#writeHead({ ...previous, ...winner.write });
      return winner.eventId === eventId ? "duplicate" : "conflict";
    }
    afterClaim?.();
    const doc = { ...previous, ...write };
    // The claim holds the write; the head needs it only for what is read from heads alone (the
    // timers, for the watchdog poller) and to keep catch-ups short.
    if (!sameTimers(previous, doc) || version % HEAD_EVERY === 0) await this.#writeHead(doc);
    this.#remember(previous._id, doc, epoch);
    return version;
  }

  /**
   * Deletes up to `limit` conversations whose latest write is older than `before`, with their
   * versions and identity claims (the retention of CONVERSATION_RETENTION_DAYS); returns how many.
   * The head may lag its versions (HEAD_EVERY), so each candidate is loaded to its latest version
   * and kept if that is newer (its head is then brought up to date, so it is not a candidate again),
   * or if a timer is still pending. `examined`: the candidates read (`limit`: more may wait). A deleted conversation's first event
   * can no longer be refused by its `firstEventId`: safe because the retention is longer than the
   * topics keep their records (config.ts), so no such event can be delivered again. A batch that
   * deleted any tells every replica to drop its cache (announceForget): one that remembers a
   * deleted conversation would write it back at the shopper's next message. It does not wait for
   * them, as an erase does: a shopper silent for the whole retention is not writing this second.
   */
  async sweepExpired(before: Date, limit: number): Promise<{ removed: number; examined: number }> {
    const stale = await this.#conversations
      .find({ updatedAt: { $lt: before } }, { projection: { _id: 1 } })
      .limit(limit)
      .toArray();
    let removed = 0;
    for (const { _id } of stale) {
      const doc = await this.load(_id);
      if (!doc || doc.timersPending) continue;
      if (doc.updatedAt >= before) {
        await this.#writeHead(doc);
        continue;
      }
      await this.#versions.deleteMany({ conversationId: _id });
      await this.#identities.deleteMany({ conversationId: _id });
      // Guarded by the version loaded, so a head written meanwhile stays. A shopper who writes in
      // the moment their conversation, silent for the whole retention, is swept may still find it
      // gone and start anew: the price of having no transactions, paid once in months.
      const deleted = await this.#conversations.deleteOne({ _id, version: { $lte: doc.version } });
      this.#cache.delete(_id);
      for (const [key, target] of this.#routes) if (target === _id) this.#routes.delete(key);
      removed += deleted.deletedCount;
    }
    // The other replicas may remember what went (and would write it back): they drop their caches.
    if (removed > 0) await announceForget(this.#db);
    return { removed, examined: stale.length };
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

/**
 * Everything that names one shopper in this service: their conversations and all the ids that lead
 * there. Found from any one id (phone number or BSUID), and followed through the identity claims to
 * the others, a number change's old and new ones included, until nothing new turns up.
 */
export interface ShopperRecords {
  conversationIds: string[];
  /** Every phone number and BSUID of the shopper this service knows (the one asked for included). */
  shopperIds: string[];
}

/** Where an id was claimed, as [phone_number_id, id], from an identity `_id` (identityKey). */
function claimedId(identity: string): [string, string] | undefined {
  const match = /^([^:]*):(?:wa|u):(.+)$/.exec(identity);
  return match ? [match[1] ?? "", match[2] ?? ""] : undefined;
}

/**
 * The shopper's records (see ShopperRecords), for `npm run erase`. With `phoneNumberId`, only under
 * that business number. Reads by regex and by unindexed fields: whole-collection scans on FerretDB,
 * which an operator's command can afford and a message's path could not.
 */
export async function findShopper(db: Db, id: string, phoneNumberId?: string): Promise<ShopperRecords> {
  const conversations = db.collection<ConversationDoc>(CONVERSATIONS);
  const identities = db.collection<IdentityDoc>(IDENTITIES);
  const business = phoneNumberId ? escapeRegex(phoneNumberId) : "[^:]*";
  const ids = new Set<string>();
  const found = new Set<string>();
  const pending = [id];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (ids.has(next)) continue;
    ids.add(next);
    const shopper = escapeRegex(next);
    const claims = await identities.find({ _id: { $regex: `^${business}:(wa|u):${shopper}$` } }).toArray();
    const heads = await conversations
      .find(
        {
          $or: [
            { _id: { $regex: `^${business}:${shopper}$` } },
            { shopperId: next, ...(phoneNumberId ? { phoneNumberId } : {}) },
            { "contact.waId": next, ...(phoneNumberId ? { phoneNumberId } : {}) },
            { "contact.userId": next, ...(phoneNumberId ? { phoneNumberId } : {}) },
          ],
        },
        { projection: { _id: 1 } },
      )
      .toArray();
    const newConversations = [...claims.map((c) => c.conversationId), ...heads.map((h) => h._id)].filter(
      (c) => !found.has(c),
    );
    for (const conversationId of newConversations) {
      found.add(conversationId);
      // The conversation's other ids: its claims, and its contact and first id as stored.
      for (const claim of await identities.find({ conversationId }).toArray()) {
        const [, other] = claimedId(claim._id) ?? [];
        if (other) pending.push(other);
      }
      const head = await conversations.findOne({ _id: conversationId });
      for (const other of [head?.shopperId, head?.contact?.waId, head?.contact?.userId])
        if (other) pending.push(other);
    }
  }
  return { conversationIds: [...found].sort(), shopperIds: [...ids].sort() };
}

/**
 * Deletes the conversations, every version of them (which hold each state written, the delivery
 * address included) and every identity claim of them or of the shopper's ids; with `dryRun` only
 * counts. Returns the count per collection. Run it after the other services' erasure: while the
 * conversation is here, a rerun after a failure finds the shopper again.
 *
 * Then the replicas' memory: every live replica is told to drop its cache and is waited for
 * (`replicas`; `wait` for tests), since one that remembers the conversation would claim its next
 * version, free again once the versions are gone, and write the erased journey back at the
 * shopper's next message. A commit built on such a copy before the replica dropped it is removed
 * by a second pass, whose counts are added. Done on every run that is not a dry run, even one that
 * found nothing: it may be the rerun of an erase cut short between its deletion and this.
 */
export async function eraseConversations(
  db: Db,
  records: ShopperRecords,
  dryRun: boolean,
  wait?: Parameters<typeof awaitForgotten>[2],
): Promise<{ counts: Record<string, number>; replicas?: ForgetReport }> {
  const counts = await removeConversations(db, records, dryRun);
  if (dryRun) return { counts };
  const replicas = await awaitForgotten(db, await announceForget(db), wait);
  const again = await removeConversations(db, records, false);
  for (const [collection, n] of Object.entries(again)) counts[collection] = (counts[collection] ?? 0) + n;
  // What the second pass deleted may have been cached meanwhile (a message of the shopper's after
  // the first drop starts a conversation anew, under the same id): dropped too, without waiting.
  if (Object.values(again).some((n) => n > 0)) await announceForget(db);
  return { counts, replicas };
}

/** One pass of eraseConversations over the collections. */
async function removeConversations(
  db: Db,
  records: ShopperRecords,
  dryRun: boolean,
): Promise<Record<string, number>> {
  const counts: Record<string, number> = { [CONVERSATIONS]: 0, [VERSIONS]: 0, [IDENTITIES]: 0 };
  const add = (collection: string, n: number) => {
    counts[collection] = (counts[collection] ?? 0) + n;
  };
  const identities = db.collection<IdentityDoc>(IDENTITIES);
  for (const conversationId of records.conversationIds) {
    add(VERSIONS, await removeMatching(db.collection<VersionDoc>(VERSIONS), { conversationId }, dryRun));
    add(IDENTITIES, await removeMatching(identities, { conversationId }, dryRun));
    add(
      CONVERSATIONS,
      await removeMatching(db.collection<ConversationDoc>(CONVERSATIONS), { _id: conversationId }, dryRun),
    );
  }
  // Claims of the shopper's ids that lead to a conversation already gone.
  for (const id of records.shopperIds)
    add(
      IDENTITIES,
      await removeMatching(
        identities,
        {
          _id: { $regex: `^[^:]*:(wa|u):${escapeRegex(id)}$` },
          conversationId: { $nin: records.conversationIds },
        },
        dryRun,
      ),
    );
  return counts;
}

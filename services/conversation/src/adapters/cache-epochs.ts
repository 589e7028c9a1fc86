import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { Collection, Db } from "mongodb";

/**
 * How deleting conversations (an erase, the retention sweep) reaches what the replicas remember of
 * them (ConversationStore's cache and routes): the deleter sets a new random token in the doc
 * FORGET; each replica reads it every CONVERSATION_CACHE_CHECK_MS, drops everything it remembers
 * when the token has changed, and acknowledges the token it acted on in its own doc
 * `seen:<replica id>`, whose `at` also says it is alive. The erase waits for those acks.
 *
 * A token, not a counter: FerretDB runs a conditional update as a read and then a replace, so two
 * increments at once may make one; two new tokens at once still leave a token no replica has seen,
 * which is all a replica needs to notice. Every `at` is the server's clock ($currentDate), so a
 * replica's clock and the erase's never need to agree.
 */
export const CACHE_EPOCHS = "conversation_cache_epochs";

const FORGET = "forget";
const SEEN = "seen:";

interface EpochDoc {
  /** FORGET, or "seen:<replica id>" (see replicaId). */
  _id: string;
  /** FORGET's: the latest deleter's. A replica's: the FORGET token it last acted on (null: none was set yet). */
  token: string | null;
  at: Date;
}

/**
 * How often a replica refreshes its ack's `at` when nothing changed. Well within LIVE_MS, even at
 * the longest CONVERSATION_CACHE_CHECK_MS (5 s): an ack is written at a check, so at most two
 * checks apart.
 */
const ACK_REFRESH_MS = 5_000;
/** A replica whose ack is older than this when deleting ends is taken for gone: not waited for. */
const LIVE_MS = 15_000;
/**
 * How long an erase waits for the replicas by default: a few checks at the longest
 * CONVERSATION_CACHE_CHECK_MS, and longer than LIVE_MS, so a replica that died is not waited for
 * long past the moment it would count as gone at the next erase.
 */
export const FORGET_TIMEOUT_MS = 20_000;

/**
 * A replica's name in its ack: the host (the pod, in Kubernetes), the process, and a suffix of its
 * own, so that a restart under the same pid or two services in one test process never share one.
 */
export const replicaId = () => `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

const epochs = (db: Db): Collection<EpochDoc> => db.collection<EpochDoc>(CACHE_EPOCHS);

/** A new forget token set after a deletion, and the server's time it was set at. */
export interface Announcement {
  token: string;
  at: Date;
}

/** Tells the replicas that conversations were deleted: they drop their caches at their next check. */
export async function announceForget(db: Db): Promise<Announcement> {
  const token = randomUUID();
  await epochs(db).updateOne(
    { _id: FORGET },
    { $set: { token }, $currentDate: { at: true } },
    { upsert: true },
  );
  const stored = await epochs(db).findOne({ _id: FORGET });
  return { token, at: stored?.at ?? new Date() };
}

/** The live replicas (see LIVE_MS) that have dropped their caches since an announcement, and those that have not. */
export interface ForgetReport {
  confirmed: string[];
  unconfirmed: string[];
}

/**
 * Which replicas have acted on an announcement: those live since `liveSince` whose ack carries one
 * of `tokens` (the announcement's, or any set after it, which the replica could only have read
 * after the announcement's deletion too).
 */
export function replicasForgetting(
  acks: Pick<EpochDoc, "_id" | "token" | "at">[],
  tokens: ReadonlySet<string>,
  liveSince: Date,
): ForgetReport {
  const live = acks.filter((ack) => ack._id.startsWith(SEEN) && ack.at >= liveSince);
  const name = (ack: Pick<EpochDoc, "_id">) => ack._id.slice(SEEN.length);
  return {
    confirmed: live.filter((ack) => ack.token !== null && tokens.has(ack.token)).map(name),
    unconfirmed: live.filter((ack) => ack.token === null || !tokens.has(ack.token)).map(name),
  };
}

/**
 * Waits until every replica live at the announcement (its ack refreshed within LIVE_MS before it)
 * has dropped its cache, reading the acks every `pollMs`; gives up after `timeoutMs` and says who
 * did not confirm. A replica that started since reads the token at start and is no worry; one that
 * crashed shortly before is waited for in vain, and named.
 */
export async function awaitForgotten(
  db: Db,
  announced: Announcement,
  options: { pollMs?: number; timeoutMs?: number } = {},
): Promise<ForgetReport> {
  const { pollMs = 200, timeoutMs = FORGET_TIMEOUT_MS } = options;
  const liveSince = new Date(announced.at.getTime() - LIVE_MS);
  const tokens = new Set([announced.token]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await epochs(db).findOne({ _id: FORGET });
    if (current?.token) tokens.add(current.token);
    // A handful of documents: the regex reads them all, which is all there is.
    const acks = await epochs(db)
      .find({ _id: { $regex: `^${SEEN}` } })
      .toArray();
    const report = replicasForgetting(acks, tokens, liveSince);
    if (report.unconfirmed.length === 0 || Date.now() >= deadline) return report;
    await sleep(pollMs);
  }
}

/**
 * A replica's side: `start` before consuming, `check` every CONVERSATION_CACHE_CHECK_MS, `stop`
 * after the consumers have stopped. `forget` drops what the replica remembers
 * (ConversationStore.forgetCached); the ack is written only once it has returned.
 */
export class CacheForgetWatcher {
  readonly replica: string;
  readonly #epochs: Collection<EpochDoc>;
  readonly #forget: () => Promise<void>;
  readonly #now: () => number;
  /** The token acted on (undefined: not read yet). */
  #token: string | null | undefined;
  #acked: { token: string | null; at: number } | undefined;

  constructor(db: Db, forget: () => Promise<void>, options: { replica?: string; now?: () => number } = {}) {
    this.#epochs = epochs(db);
    this.#forget = forget;
    this.replica = options.replica ?? replicaId();
    this.#now = options.now ?? Date.now;
  }

  /**
   * Takes the token as it is now without acting on it: a forget from before this process started
   * concerns nothing it remembers. Then acks, so an erase from now on waits for this replica.
   */
  async start(): Promise<void> {
    this.#token = await this.#read();
    await this.#ack();
  }

  /** Acts on a new token, and acks; true when the cache was dropped. */
  async check(): Promise<boolean> {
    const token = await this.#read();
    const changed = token !== this.#token;
    if (changed) {
      await this.#forget();
      this.#token = token;
    }
    const acked = this.#acked;
    if (!acked || acked.token !== this.#token || this.#now() - acked.at >= ACK_REFRESH_MS) await this.#ack();
    return changed;
  }

  /** Removes this replica's ack, so an erase does not wait for a replica that has stopped. */
  async stop(): Promise<void> {
    await this.#epochs.deleteOne({ _id: `${SEEN}${this.replica}` });
  }

  async #read(): Promise<string | null> {
    return (await this.#epochs.findOne({ _id: FORGET }))?.token ?? null;
  }

  async #ack(): Promise<void> {
    const token = this.#token ?? null;
    await this.#epochs.updateOne(
      { _id: `${SEEN}${this.replica}` },
      { $set: { token }, $currentDate: { at: true } },
      { upsert: true },
    );
    this.#acked = { token, at: this.#now() };
  }
}

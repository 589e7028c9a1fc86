import { RecentRate } from "@taituri/pacing";
import {
  type Collection,
  type Document,
  MongoBulkWriteError,
  MongoServerError,
  type OptionalUnlessRequiredId,
} from "mongodb";

export type InsertOutcome = "inserted" | "duplicate";

interface Waiting<T> {
  doc: OptionalUnlessRequiredId<T>;
  resolve: (outcome: InsertOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Inserts of one collection sent together (group commit): while one `insertMany` is in flight, the
 * documents that arrive wait and go in the next one. A document alone goes at once, and batches grow
 * only with load. Each caller learns its own outcome: inserted, a duplicate of the
 * unique `_id` (a claim someone already holds), or the error that refused its document.
 *
 * Why: the claims on the message path (an inbound event's, an outbound message's) are inserts into
 * a unique index. On FerretDB an insert costs ~0.4-0.6 ms of CPU alone and ~0.1 ms in a batch of
 * ten, which runs as one statement (docs/infrastructure.md). FerretDB inserts a batch that holds a
 * duplicate one document at a time, so a batch costs no more than its inserts alone would.
 *
 * `minIntervalMs` spaces the statements under load: a batch waits until that long after the
 * previous one started, but only while documents arrive at more than about one per interval
 * (`spaceFromExpected`, from the rate of the last ~100 ms, RecentRate). Idle, a document goes at
 * once; under load, batches grow to a statement per interval.
 *
 * Why only under load: the wait buys CPU only if it gathers documents. At a document per interval
 * or fewer it gathers one at most and costs each insert up to the whole interval, and several such
 * waits lie on each message's path (bench/README.md has the measurement).
 */
export class GroupInserter<T extends Document> {
  readonly #collection: Collection<T>;
  readonly #maxBatch: number;
  readonly #minIntervalMs: number;
  readonly #spaceFromExpected: number;
  #waiting: Waiting<T>[] = [];
  #sending = false;
  /** When the last insertMany went out (performance.now()); the next waits for minIntervalMs after it. */
  #lastSentAt = Number.NEGATIVE_INFINITY;
  /** Documents handed in lately, to tell whether a wait would gather any. */
  readonly #arrivals = new RecentRate();

  /**
   * `maxBatch`: most documents per insertMany (FerretDB inserts at most 100 per statement).
   * `minIntervalMs`: the least time between the starts of two insertMany under load (0: none).
   * `spaceFromExpected`: how many documents the recent arrival rate must bring per interval for
   * the spacing to apply (default 1.2).
   */
  constructor(
    collection: Collection<T>,
    options: { maxBatch?: number; minIntervalMs?: number; spaceFromExpected?: number } = {},
  ) {
    this.#collection = collection;
    this.#maxBatch = options.maxBatch ?? 100;
    this.#minIntervalMs = options.minIntervalMs ?? 0;
    this.#spaceFromExpected = options.spaceFromExpected ?? 1.2;
  }

  insert(doc: OptionalUnlessRequiredId<T>): Promise<InsertOutcome> {
    this.#arrivals.add();
    return new Promise((resolve, reject) => {
      this.#waiting.push({ doc, resolve, reject });
      if (!this.#sending) void this.#send();
    });
  }

  async #send(): Promise<void> {
    this.#sending = true;
    while (this.#waiting.length > 0) {
      const wait = this.#lastSentAt + this.#minIntervalMs - performance.now();
      if (wait > 0 && this.#arrivals.expectedWithin(this.#minIntervalMs) >= this.#spaceFromExpected)
        await new Promise((resolve) => setTimeout(resolve, wait));
      this.#lastSentAt = performance.now();
      const batch = this.#waiting.splice(0, this.#maxBatch);
      await this.#insertBatch(batch);
    }
    this.#sending = false;
  }

  async #insertBatch(batch: Waiting<T>[]): Promise<void> {
    try {
      await this.#collection.insertMany(
        batch.map((w) => w.doc),
        { ordered: false },
      );
      for (const w of batch) w.resolve("inserted");
    } catch (error) {
      const writeErrors =
        error instanceof MongoBulkWriteError ? [error.writeErrors].flat().filter((e) => e !== undefined) : [];
      if (writeErrors.length === 0) {
        // Nothing says which documents went in (a network error, a timeout, a refused command):
        // each caller gets the error and retries its own, where a duplicate shows what did go in.
        for (const w of batch) w.reject(error);
        return;
      }
      const refused = new Map<number, MongoServerError>();
      for (const writeError of writeErrors)
        refused.set(
          writeError.index,
          new MongoServerError({ message: writeError.errmsg ?? "write error", code: writeError.code }),
        );
      batch.forEach((w, index) => {
        const refusal = refused.get(index);
        if (!refusal) w.resolve("inserted");
        else if (refusal.code === 11000) w.resolve("duplicate");
        else w.reject(refusal);
      });
    }
  }
}

import type { KafkaMessage } from "kafkajs";

interface Entry {
  message: KafkaMessage;
  key: string;
  state: "waiting" | "in_hand" | "done" | "abandoned";
}

export interface LaneOptions {
  /** Messages handled at once, never two of one key. */
  concurrency: number;
  /** Handles one message; a rejection means it was given up (the consumer is stopping). */
  handle: (message: KafkaMessage) => Promise<void>;
  /** Whether to start nothing more (the consumer is stopping). */
  stopped: () => boolean;
  /** Called when the handled prefix grows: there is a new position to commit. */
  onProgress: () => void;
}

/**
 * One assigned partition's messages, from fetched to handled. The consumer adds each fetched batch
 * and goes on fetching while they are handled, so a message fetched now starts as soon as a slot and
 * its key are free, not after the slowest message of the batch before it (kafkajs fetches again only
 * once every batch of the last fetch has returned, which at 500 messages/s made messages wait longer
 * for the batch ahead than for their own handling).
 *
 * Up to `concurrency` messages are in hand, never two of one key, each key's in offset order; a free
 * slot takes the waiting message with the lowest offset whose key is idle. `position` is the offset
 * after the longest handled prefix: what may be committed, never past a message still waiting or in
 * hand. A message given up (the consumer stopping) ends the prefix and stops the lane, so it and
 * everything after it come back after a restart: at least once, never skipped.
 */
export class PartitionLane {
  readonly #options: LaneOptions;
  /** Offset order; entries before `#head` are done and counted in `position`. */
  #entries: Entry[] = [];
  #head = 0;
  readonly #busy = new Set<string>();
  #inHand = 0;
  /** The highest offset ever added: a refetch after a rebalance or restart brings these again. */
  #highest = -1n;
  #position: string | undefined;
  #revoked = false;
  #halted = false;
  #waiters: Array<() => void> = [];

  constructor(options: LaneOptions) {
    this.#options = options;
  }

  /** Messages fetched and not yet handled: waiting or in hand. */
  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** The offset after the handled prefix (the next to read), once anything was handled. */
  get position(): string | undefined {
    return this.#position;
  }

  get revoked(): boolean {
    return this.#revoked;
  }

  /**
   * Queues a fetched batch in offset order and starts what may start. Offsets already added are
   * skipped: after a rebalance that kept this partition, or a restart of the kafkajs consumer, the
   * fetch starts again from the committed position, behind what this lane already holds.
   */
  add(messages: KafkaMessage[]): void {
    if (this.#revoked) return;
    for (const message of messages) {
      const offset = BigInt(message.offset);
      if (offset <= this.#highest) continue;
      this.#highest = offset;
      this.#entries.push({ message, key: message.key?.toString() ?? "", state: "waiting" });
    }
    this.#pump();
  }

  /** Resolves once at most `n` messages are waiting or in hand (or the lane can make no more progress). */
  whenSizeAtMost(n: number): Promise<void> {
    if (this.size <= n || this.#halted || this.#revoked) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.size <= n || this.#halted || this.#revoked) resolve();
        else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  /** Resolves when nothing is in hand. */
  async idle(): Promise<void> {
    while (this.#inHand > 0) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /**
   * The partition went to another member: nothing more starts and progress is no longer reported
   * (the new owner commits). Messages in hand finish; the new owner may handle them again, which
   * the handlers' idempotency keys absorb.
   */
  revoke(): void {
    this.#revoked = true;
    for (const entry of this.#entries.slice(this.#head))
      if (entry.state === "waiting") entry.state = "abandoned";
    this.#wake();
  }

  /** Wakes whoever waits on this lane to look again (the consumer stopping). */
  wake(): void {
    this.#wake();
  }

  #pump(): void {
    while (
      !this.#revoked &&
      !this.#halted &&
      !this.#options.stopped() &&
      this.#inHand < this.#options.concurrency
    ) {
      const entry = this.#next();
      if (!entry) return;
      entry.state = "in_hand";
      this.#inHand += 1;
      this.#busy.add(entry.key);
      void this.#run(entry);
    }
  }

  /** The lowest waiting entry whose key is idle (its earlier messages have all finished). */
  #next(): Entry | undefined {
    for (let i = this.#head; i < this.#entries.length; i++) {
      const entry = this.#entries[i] as Entry;
      if (entry.state === "waiting" && !this.#busy.has(entry.key)) return entry;
    }
    return undefined;
  }

  async #run(entry: Entry): Promise<void> {
    try {
      await this.#options.handle(entry.message);
      entry.state = "done";
    } catch {
      // Given up while stopping: it and everything after it stay uncommitted.
      entry.state = "abandoned";
      this.#halted = true;
    } finally {
      this.#busy.delete(entry.key);
      this.#inHand -= 1;
    }
    const before = this.#head;
    while (this.#head < this.#entries.length && (this.#entries[this.#head] as Entry).state === "done") {
      this.#position = (BigInt((this.#entries[this.#head] as Entry).message.offset) + 1n).toString();
      this.#head += 1;
    }
    // Drops the handled prefix now and then, not on every message (a shift is a copy).
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    if (this.#head !== before && !this.#revoked) this.#options.onProgress();
    this.#wake();
    this.#pump();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }
}

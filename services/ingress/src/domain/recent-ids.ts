/**
 * The ids of events this instance stored most recently, oldest forgotten first. Meta retries a
 * webhook it thinks we missed, often within seconds; recognising those here saves a Kafka write
 * and a consumer's claim. It is only an optimisation: another instance, or a restart, does not
 * know these ids, and the consumers' unique indexes deduplicate regardless.
 */
export class RecentIds {
  readonly #capacity: number;
  readonly #ids = new Map<string, true>();

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(id: string): void {
    if (this.#capacity <= 0) return;
    this.#ids.delete(id);
    this.#ids.set(id, true);
    if (this.#ids.size > this.#capacity) {
      const oldest = this.#ids.keys().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
  }
}

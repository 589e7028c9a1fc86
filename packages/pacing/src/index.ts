/**
 * How many events arrived lately: a count that decays exponentially with the time constant
 * `windowMs`, so that a steady rate of r events per ms holds it near r × windowMs.
 *
 * Why: batching by waiting (grouped inserts, spaced fetches) saves CPU only when the wait gathers
 * something. The batchers ask this how many events a wait is likely to gather, and go at once when
 * the answer is about one: the wait would then cost latency and buy nothing. A count rather than a
 * mean of gaps, because events come in bursts (a fetch hands over several messages at once).
 */
export class RecentRate {
  readonly #windowMs: number;
  #count = 0;
  /** The performance.now() the count was last brought up to date at. */
  #at = 0;

  constructor(windowMs = 100) {
    if (!(windowMs > 0)) throw new RangeError(`windowMs must be positive, got ${windowMs}`);
    this.#windowMs = windowMs;
  }

  /** Counts `n` events arriving now. */
  add(n = 1): void {
    this.#count = this.#decayed() + n;
  }

  /** How many events the recent rate brings in `ms`. */
  expectedWithin(ms: number): number {
    return (this.#decayed() * ms) / this.#windowMs;
  }

  #decayed(): number {
    const now = performance.now();
    this.#count *= Math.exp(-(now - this.#at) / this.#windowMs);
    this.#at = now;
    return this.#count;
  }
}

/**
 * The wait before retry `attempt` (1 for the first retry): a ceiling that doubles from `initialMs`
 * up to `maxMs`, jittered within its upper half, so that those retrying the same outage do not
 * come back in step and yet each waits at least half its ceiling.
 */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

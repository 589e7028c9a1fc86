/**
 * Meta's two throughput limits on sends. Per business number: 80 messages a second by default
 * (130429 past it). Per pair of business number and shopper: about one message every 6 seconds,
 * with bursts allowed (131056 once the burst is spent). Both are counted on the real clock (a
 * clock jump is about the shopper coming back, not about the pace of sends).
 */
export interface ThroughputOptions {
  /** Messages per second per business number. */
  perNumberPerSecond: number;
  /** Messages a pair may send at once before the pace applies. */
  pairBurst: number;
  /** One more message per pair each this many ms. */
  pairIntervalMs: number;
}

export const META_THROUGHPUT: ThroughputOptions = {
  perNumberPerSecond: 80,
  pairBurst: 45,
  pairIntervalMs: 6000,
};

export class Throughput {
  readonly #options: ThroughputOptions;
  readonly #now: () => number;
  /** Send times in the last second, per business number. */
  readonly #recent = new Map<string, number[]>();
  /** Token buckets per "<business number>|<recipient>". */
  readonly #pairs = new Map<string, { tokens: number; at: number }>();

  constructor(options: ThroughputOptions = META_THROUGHPUT, now: () => number = () => performance.now()) {
    this.#options = options;
    this.#now = now;
  }

  /**
   * Takes one send for the pair, or says which limit it is over. A refused send takes nothing:
   * Meta does not count what it refused.
   */
  take(phoneNumberId: string, recipient: string): "ok" | "number" | "pair" {
    const now = this.#now();
    const recent = (this.#recent.get(phoneNumberId) ?? []).filter((at) => now - at < 1000);
    this.#recent.set(phoneNumberId, recent);
    if (recent.length >= this.#options.perNumberPerSecond) return "number";
    const key = `${phoneNumberId}|${recipient}`;
    const pair = this.#pairs.get(key) ?? { tokens: this.#options.pairBurst, at: now };
    const refilled = Math.min(
      this.#options.pairBurst,
      pair.tokens + (now - pair.at) / this.#options.pairIntervalMs,
    );
    if (refilled < 1) {
      this.#pairs.set(key, { tokens: refilled, at: now });
      return "pair";
    }
    this.#pairs.set(key, { tokens: refilled - 1, at: now });
    recent.push(now);
    return "ok";
  }
}

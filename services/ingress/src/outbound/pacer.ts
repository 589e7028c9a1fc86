/**
 * Paces sends per business phone number with a token bucket. Meta caps each number's throughput
 * (80 messages/s by default, more once upgraded) and answers 130429 beyond it; waiting here is
 * cheaper than being refused and retrying. The bucket lives in this process: with N dispatcher
 * replicas, give each 1/N of the number's rate.
 */
export class Pacer {
  readonly #ratePerSecond: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    ratePerSecond: number,
    options: { burst?: number; now?: () => number; sleep?: (ms: number) => Promise<void> } = {},
  ) {
    this.#ratePerSecond = ratePerSecond;
    // A second's worth by default: an idle number may send a short burst at once.
    this.#burst = options.burst ?? ratePerSecond;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** Resolves when `key` may send one message; returns how long it waited, in ms. */
  async acquire(key: string): Promise<number> {
    let waited = 0;
    for (;;) {
      const now = this.#now();
      const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, at: now };
      bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) * this.#ratePerSecond) / 1000);
      bucket.at = now;
      this.#buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return waited;
      }
      const wait = Math.ceil(((1 - bucket.tokens) * 1000) / this.#ratePerSecond);
      waited += wait;
      await this.#sleep(wait);
    }
  }
}

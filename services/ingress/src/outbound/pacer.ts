/**
 * Paces sends per business phone number with a token bucket. Meta caps each number's throughput
 * (80 messages/s by default, more once upgraded) and answers 130429 beyond it; waiting here is
 * cheaper than being refused and retrying. The bucket lives in this process, and the number's
 * messages are spread over every dispatcher replica (the outbound topic is keyed by conversation):
 * each replica paces at its share of the rate, the share of the topic's partitions it owns
 * (setShare, from the consumer group's assignment), so the replicas together never exceed it
 * (docs/architecture.md argues this against a shared budget in Redis).
 */
export class Pacer {
  readonly #fullRate: number;
  readonly #fullBurst: number;
  #ratePerSecond: number;
  #burst: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    ratePerSecond: number,
    options: { burst?: number; now?: () => number; sleep?: (ms: number) => Promise<void> } = {},
  ) {
    this.#fullRate = ratePerSecond;
    // A second's worth by default: an idle number may send a short burst at once.
    this.#fullBurst = options.burst ?? ratePerSecond;
    this.#ratePerSecond = this.#fullRate;
    this.#burst = this.#fullBurst;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * This process's share (0 < share ≤ 1) of each number's rate and burst. At least one message a
   * second and a burst of one remain, so a replica that owns a sliver still sends.
   */
  setShare(share: number): void {
    const fraction = Math.min(1, Math.max(0, share));
    this.#ratePerSecond = Math.max(1, this.#fullRate * fraction);
    this.#burst = Math.max(1, this.#fullBurst * fraction);
    for (const bucket of this.#buckets.values()) bucket.tokens = Math.min(bucket.tokens, this.#burst);
  }

  get ratePerSecond(): number {
    return this.#ratePerSecond;
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

/**
 * A replica's share of each number's rate: the share of the outbound topic's partitions it owns.
 * Owning none (a replica between assignments, or more replicas than partitions) sends nothing
 * anyway; the share is then kept at its smallest, not zero.
 */
export function paceShare(owned: number, total: number): number {
  if (total <= 0 || owned <= 0) return 1 / Math.max(1, total);
  return Math.min(1, owned / total);
}

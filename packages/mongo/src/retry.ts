import { setTimeout as sleep } from "node:timers/promises";
import { backoffMs } from "@taituri/pacing";
import { isTransientMongoError } from "./errors.ts";

/** How long a write may be retried: a number of attempts, a deadline, or whichever comes first. */
export type RetryBound = { attempts: number; until?: Date } | { attempts?: number; until: Date };

export type RetryWriteOptions = RetryBound & {
  /** The first wait's ceiling, doubled at each retry up to `maxMs` (backoffMs, jittered). */
  initialMs: number;
  maxMs: number;
  /** Other errors that are worth another attempt, beside a MongoDB that did not answer. */
  alsoRetry?: (error: unknown) => boolean;
  /** Told of each failed attempt that will be retried, before the wait. */
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
};

/**
 * Runs `write` until it succeeds, retrying it in place while it fails because the store did not
 * answer (isTransientMongoError, or `alsoRetry`). Any other error is thrown at once; so is the last
 * transient one once the attempts are spent or the next wait would end after `until`.
 *
 * For a write that must not be lost because what it records already happened outside (Meta took
 * the message, the provider was paid): letting the message go back to Kafka would do that again.
 * The write must be idempotent, as a retry may follow an attempt that did land.
 */
export async function retryWrite<T>(write: () => Promise<T>, options: RetryWriteOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!(isTransientMongoError(error) || options.alsoRetry?.(error))) throw error;
      if (options.attempts !== undefined && attempt >= options.attempts) throw error;
      const wait = backoffMs(attempt, options.initialMs, options.maxMs);
      if (options.until !== undefined && Date.now() + wait > options.until.getTime()) throw error;
      options.onRetry?.(error, attempt, wait);
      await sleep(wait);
    }
  }
}

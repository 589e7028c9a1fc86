/**
 * The message can never succeed (malformed, refers to nothing, rejected by a 4xx other than 408/429):
 * it goes to the dead-letter topic with the reason and its offset is committed, so one poison
 * message never blocks the shopper's partition.
 */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
}

/**
 * A dependency is unavailable or overloaded (timeouts, 5xx, 408, 429, a lost connection): the same
 * message is retried in place with backoff, which keeps the partition's order, and is never
 * dead-lettered for it.
 */
export class TransientError extends Error {
  override readonly name = "TransientError";
}

export type ErrorClass = "permanent" | "transient" | "unknown";

export function classify(error: unknown): ErrorClass {
  if (error instanceof PermanentError) return "permanent";
  if (error instanceof TransientError || isTransientKafkaError(error)) return "transient";
  return "unknown";
}

/**
 * A kafkajs error that means "the cluster is not answering (yet)": one it marks retriable, or the
 * "retries exhausted" wrapper around one. A handler whose publish fails this way must be retried,
 * not dead-lettered: during a broker outage every message would otherwise end up in the DLQ.
 */
export function isTransientKafkaError(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (!e.name.startsWith("KafkaJS")) return false;
    if ((e as { retriable?: boolean }).retriable === true) return true;
    if (e.name === "KafkaJSNumberOfRetriesExceeded") return true;
  }
  return false;
}

import { TransientError } from "@taituri/kafka";
import { MongoServerError } from "mongodb";

/** True for E11000: the unique index refused a second claim of the same key. */
export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 11000;
}

/** True when the error says the server could not be reached or answered in time (retry, not dead-letter). */
export function isTransientMongoError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const name = error.name;
  return (
    name === "MongoServerSelectionError" ||
    name === "MongoNetworkError" ||
    name === "MongoNetworkTimeoutError" ||
    name === "MongoTopologyClosedError" ||
    name === "MongoNotConnectedError" ||
    (error instanceof MongoServerError && error.hasErrorLabel("RetryableWriteError"))
  );
}

/**
 * A MongoDB error that means the store did not answer (isTransientMongoError) as the TransientError
 * that retries the message, its message naming `store`, so a retry in the logs says which store
 * was down; any other error as it is. For the boundary of a handler or route that writes to a store.
 */
export function asTransient(error: unknown, store: string): unknown {
  return isTransientMongoError(error)
    ? new TransientError(`${store} unavailable: ${(error as Error).message}`, { cause: error })
    : error;
}

import { PermanentError, TransientError } from "@taituri/kafka";
import {
  MongoError,
  MongoErrorLabel,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
} from "mongodb";

/** True for E11000: the unique index refused a second claim of the same key. */
export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 11000;
}

/**
 * The server's codes that mean "not now": the retryable reads/writes specifications' list (which
 * the driver applies to its one automatic retry), plus what a store under strain or away answers.
 * The driver's own list is internal, so it is named here, with the specification's names.
 */
const TRANSIENT_CODES: ReadonlyMap<number, string> = new Map([
  // FerretDB answers every command with InternalError while its PostgreSQL is away (tried on 1.24:
  // "failed to connect to `user=… database=…`"), and real MongoDB uses it for faults of its own,
  // never for a request it refuses.
  [1, "InternalError"],
  [6, "HostUnreachable"],
  [7, "HostNotFound"],
  // maxTimeMS ran out: a slow server, not a bad request.
  [50, "MaxTimeMSExpired"],
  [64, "WriteConcernTimeout"],
  [89, "NetworkTimeout"],
  [91, "ShutdownInProgress"],
  [134, "ReadConcernMajorityNotAvailableYet"],
  [189, "PrimarySteppedDown"],
  [262, "ExceededTimeLimit"],
  [9001, "SocketException"],
  [10107, "NotWritablePrimary"],
  [11600, "InterruptedAtShutdown"],
  [11602, "InterruptedDueToReplStateChange"],
  [13435, "NotPrimaryNoSecondaryOk"],
  [13436, "NotPrimaryOrSecondary"],
]);

/**
 * Codes that say the request itself cannot be stored, however often it is sent: the message
 * carrying it goes to the dead-letter topic at once instead of holding its partition for minutes.
 * Duplicate keys (11000) are not here: a caller handles its own, and an upsert racing another
 * one succeeds when sent again.
 */
const PERMANENT_CODES: ReadonlyMap<number, string> = new Map([
  [2, "BadValue"],
  [9, "FailedToParse"],
  [14, "TypeMismatch"],
  [121, "DocumentValidationFailure"],
  [10334, "BSONObjectTooLarge"],
  // "Resulting document after update is larger than 16777216".
  [17419, "DocumentTooLarge"],
]);

/** Labels the driver or the server puts on an error that a later attempt may not meet. */
const TRANSIENT_LABELS: readonly string[] = [
  MongoErrorLabel.RetryableWriteError,
  MongoErrorLabel.TransientTransactionError,
  MongoErrorLabel.ResetPool,
  MongoErrorLabel.PoolRequestedRetry,
  MongoErrorLabel.RetryableError,
  MongoErrorLabel.SystemOverloadedError,
];

/**
 * Driver errors whose class is not exported (cmap's pool errors) or that mean a client closed or a
 * deadline passed under it: named, as the driver names them. A closed client is a process stopping,
 * whose consumer gives the message back to Kafka anyway.
 */
const TRANSIENT_NAMES: ReadonlySet<string> = new Set([
  "MongoWaitQueueTimeoutError",
  "MongoPoolClosedError",
  "MongoOperationTimeoutError",
  "MongoTopologyClosedError",
  "MongoNotConnectedError",
  "MongoClientClosedError",
  "MongoServerClosedError",
]);

export type MongoErrorClass = "transient" | "permanent" | "unknown";

/**
 * What a MongoDB error says about trying again, from the driver's own signals: its network classes
 * (MongoNetworkError, so MongoNetworkTimeoutError and the pool-cleared error too) and server
 * selection, the labels it and the server attach, and the server's code (a write concern's too).
 * What an error wraps is followed a few levels down, so it is judged by what it wraps: its `cause`,
 * and the driver's own wrapping of a failed insertMany or bulkWrite (a MongoBulkWriteError whose
 * `errorResponse` is the network or selection error that stopped it). "unknown": not a MongoDB
 * error, or one that says neither.
 */
export function classifyMongoError(error: unknown): MongoErrorClass {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = wrapped(e), depth++) {
    const kind = classifyOne(e);
    if (kind !== "unknown") return kind;
  }
  return "unknown";
}

function wrapped(error: Error): unknown {
  const response = (error as { errorResponse?: unknown }).errorResponse;
  return response instanceof Error ? response : error.cause;
}

function classifyOne(error: Error): MongoErrorClass {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return "transient";
  if (TRANSIENT_NAMES.has(error.name)) return "transient";
  if (!(error instanceof MongoError)) return error.name === "BSONError" ? "permanent" : "unknown";
  if (TRANSIENT_LABELS.some((label) => error.hasErrorLabel(label))) return "transient";
  if (error.name === "MongoInvalidArgumentError") return "permanent";
  const codes = [error.code, writeConcernCode(error)].filter((c) => c !== undefined).map(Number);
  if (codes.some((code) => TRANSIENT_CODES.has(code))) return "transient";
  if (codes.some((code) => PERMANENT_CODES.has(code))) return "permanent";
  return "unknown";
}

/** A write concern's failure comes as an ok reply whose `writeConcernError` holds the real code. */
function writeConcernCode(error: MongoError): number | undefined {
  const code = (error as { result?: { writeConcernError?: { code?: unknown } } }).result?.writeConcernError
    ?.code;
  return typeof code === "number" ? code : undefined;
}

/** True when the error says the server could not be reached, or answered "not now" (retry, not dead-letter). */
export function isTransientMongoError(error: unknown): boolean {
  return classifyMongoError(error) === "transient";
}

/**
 * A MongoDB error as the consumer's classes, for the boundary of a handler or route that writes to
 * a store: one that says "not now" (classifyMongoError) as the TransientError that retries the
 * message, one that says the request can never be stored as the PermanentError that dead-letters
 * it, each naming `store` so a log line says which store it was; any other error as it is.
 */
export function asTransient(error: unknown, store: string): unknown {
  // Already decided by the code that threw it, whatever it wraps.
  if (error instanceof TransientError || error instanceof PermanentError) return error;
  const kind = classifyMongoError(error);
  if (kind === "unknown") return error;
  const message = `${store} ${kind === "transient" ? "unavailable" : "refused the write"}: ${(error as Error).message}`;
  return kind === "transient"
    ? new TransientError(message, { cause: error })
    : new PermanentError(message, { cause: error });
}

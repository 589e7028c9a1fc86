import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { classify, PermanentError, TransientError } from "@taituri/kafka";
import {
  MongoBulkWriteError,
  MongoError,
  MongoErrorLabel,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoNotConnectedError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
} from "mongodb";
import { asTransient, classifyMongoError, type MongoErrorClass } from "./errors.ts";

// The pool's errors are not exported by the driver; these are its own classes, built as it does.
const cmap = createRequire(import.meta.url)("mongodb/lib/cmap/errors.js") as {
  PoolClearedError: new (pool: { address: string }, message?: string) => Error;
  PoolClosedError: new (pool: { address: string }) => Error;
  WaitQueueTimeoutError: new (message: string, address: string) => Error;
};

const server = (code: number, codeName = "", labels: string[] = []) =>
  new MongoServerError({ message: `server error ${code}`, code, codeName, errorLabels: labels });

const labelled = (label: string) => {
  const error = new MongoError("labelled");
  error.addErrorLabel(label);
  return error;
};

const cases: Array<[string, unknown, MongoErrorClass]> = [
  // The driver's network classes and server selection: the server could not be reached.
  ["MongoNetworkError (connection refused)", new MongoNetworkError("connect ECONNREFUSED"), "transient"],
  ["MongoNetworkTimeoutError", new MongoNetworkTimeoutError("timed out"), "transient"],
  ["PoolClearedError", new cmap.PoolClearedError({ address: "db:27017" }, "pool cleared"), "transient"],
  ["MongoServerSelectionError", new MongoServerSelectionError("no server", {} as never), "transient"],
  ["WaitQueueTimeoutError", new cmap.WaitQueueTimeoutError("queue", "db:27017"), "transient"],
  ["PoolClosedError", new cmap.PoolClosedError({ address: "db:27017" }), "transient"],
  ["MongoOperationTimeoutError", new MongoOperationTimeoutError("timeoutMS"), "transient"],
  ["MongoTopologyClosedError", new MongoTopologyClosedError(), "transient"],
  ["MongoNotConnectedError", new MongoNotConnectedError("not connected"), "transient"],
  // Labels, on whatever class carries them.
  ...[
    MongoErrorLabel.RetryableWriteError,
    MongoErrorLabel.TransientTransactionError,
    MongoErrorLabel.ResetPool,
    MongoErrorLabel.PoolRequestedRetry,
    MongoErrorLabel.RetryableError,
    MongoErrorLabel.SystemOverloadedError,
  ].map((label): [string, unknown, MongoErrorClass] => [`label ${label}`, labelled(label), "transient"]),
  [
    "a server error labelled RetryableWriteError",
    server(11000, "DuplicateKey", ["RetryableWriteError"]),
    "transient",
  ],
  // The server's codes.
  ["1 InternalError (FerretDB with its PostgreSQL away)", server(1, "InternalError"), "transient"],
  ["6 HostUnreachable", server(6), "transient"],
  ["7 HostNotFound", server(7), "transient"],
  ["50 MaxTimeMSExpired", server(50), "transient"],
  ["89 NetworkTimeout", server(89), "transient"],
  ["91 ShutdownInProgress", server(91, "ShutdownInProgress"), "transient"],
  ["134 ReadConcernMajorityNotAvailableYet", server(134), "transient"],
  ["189 PrimarySteppedDown", server(189), "transient"],
  ["262 ExceededTimeLimit", server(262), "transient"],
  ["9001 SocketException", server(9001), "transient"],
  ["10107 NotWritablePrimary", server(10107), "transient"],
  ["11600 InterruptedAtShutdown", server(11600), "transient"],
  ["11602 InterruptedDueToReplStateChange", server(11602), "transient"],
  ["13435 NotPrimaryNoSecondaryOk", server(13435), "transient"],
  ["13436 NotPrimaryOrSecondary", server(13436), "transient"],
  [
    "a write concern timeout (64)",
    new MongoWriteConcernError({
      writeConcernError: { code: 64, errmsg: "waiting for replication timed out" },
      ok: 1,
    }),
    "transient",
  ],
  [
    "an insertMany's bulk error with a transient code",
    new MongoBulkWriteError({ message: "internal", code: 1, writeErrors: [] }, {} as never),
    "transient",
  ],
  [
    "an insertMany stopped by server selection (the driver's MongoBulkWriteError around it)",
    new MongoBulkWriteError(new MongoServerSelectionError("connect ECONNREFUSED", {} as never), {} as never),
    "transient",
  ],
  // The request itself cannot be stored.
  ["2 BadValue", server(2, "BadValue"), "permanent"],
  ["9 FailedToParse", server(9), "permanent"],
  ["14 TypeMismatch", server(14), "permanent"],
  ["121 DocumentValidationFailure", server(121), "permanent"],
  ["10334 BSONObjectTooLarge", server(10334), "permanent"],
  ["17419 DocumentTooLarge (after an update)", server(17419), "permanent"],
  ["MongoInvalidArgumentError", new MongoInvalidArgumentError("bad option"), "permanent"],
  [
    "BSONError (a document over 16 MiB)",
    Object.assign(new Error("too large"), { name: "BSONError" }),
    "permanent",
  ],
  // Neither: the consumer retries it for a bounded time, then dead-letters it.
  ["11000 DuplicateKey (the caller's to handle)", server(11000, "DuplicateKey"), "unknown"],
  ["a server code not listed (40 ConflictingUpdateOperators)", server(40), "unknown"],
  ["a TypeError", new TypeError("undefined is not a function"), "unknown"],
  ["a string", "down", "unknown"],
  ["undefined", undefined, "unknown"],
  // Judged by what it wraps; a name alone is not the driver's class.
  [
    "an Error caused by a MongoNetworkError",
    new Error("load failed", { cause: new MongoNetworkError("reset") }),
    "transient",
  ],
  [
    "an Error named MongoNetworkError",
    Object.assign(new Error("x"), { name: "MongoNetworkError" }),
    "unknown",
  ],
];

for (const [what, error, expected] of cases) {
  test(`classifyMongoError: ${what} is ${expected}`, () => {
    assert.equal(classifyMongoError(error), expected);
  });
}

test("asTransient: a store that did not answer becomes a TransientError naming the store", () => {
  const down = new MongoNetworkError("connect ECONNREFUSED 127.0.0.1:27017");
  const retried = asTransient(down, "order store");
  assert.ok(retried instanceof TransientError);
  assert.equal(classify(retried), "transient");
  assert.equal(retried.message, "order store unavailable: connect ECONNREFUSED 127.0.0.1:27017");
  assert.equal(retried.cause, down);
  const ferret = server(1, "InternalError");
  assert.equal(classify(asTransient(ferret, "conversation store")), "transient");
});

test("asTransient: a write the store can never take becomes a PermanentError naming the store", () => {
  const tooLarge = server(10334, "BSONObjectTooLarge");
  const refused = asTransient(tooLarge, "order store");
  assert.ok(refused instanceof PermanentError);
  assert.equal(refused.message, "order store refused the write: server error 10334");
  assert.equal(refused.cause, tooLarge);
});

test("asTransient: other errors, and errors already classified, stay as they are", () => {
  const bug = new TypeError("undefined is not a function");
  assert.equal(asTransient(bug, "order store"), bug);
  const poison = new PermanentError("bad input", { cause: server(1) });
  assert.equal(asTransient(poison, "order store"), poison);
  const later = new TransientError("later", { cause: server(121) });
  assert.equal(asTransient(later, "order store"), later);
  assert.equal(asTransient("a string", "order store"), "a string");
});

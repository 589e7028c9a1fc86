import { type Db, type IndexDescription, MongoClient } from "mongodb";

export interface MongoHandle {
  client: MongoClient;
  db: Db;
  close(): Promise<void>;
}

export interface MongoOptions {
  url: string;
  dbName: string;
  appName: string;
  /** Most connections, so operations in flight (see MONGO_POOL_SIZE). */
  maxPoolSize?: number;
}

/**
 * A client that connects on its first operation, so a service starts with the server away (its
 * start-up pings until it answers). Throws only on a URL or option the driver refuses.
 */
export function openMongo(options: MongoOptions): MongoHandle {
  const client = new MongoClient(options.url, {
    appName: options.appName,
    ...(options.maxPoolSize ? { maxPoolSize: options.maxPoolSize } : {}),
    // Fail fast when the server is down: callers classify the error as transient and retry.
    serverSelectionTimeoutMS: 5000,
    connectTimeoutMS: 5000,
  });
  const db = client.db(options.dbName);
  return { client, db, close: () => client.close() };
}

/** Connects and verifies the server answers, so a wrong URL fails a tool at once, not at its first query. */
export async function connectMongo(options: MongoOptions): Promise<MongoHandle> {
  const handle = openMongo(options);
  await handle.db.command({ ping: 1 });
  return handle;
}

export interface CollectionIndexes {
  collection: string;
  indexes: IndexDescription[];
}

/**
 * Creates every index a service relies on before it takes traffic: the unique ones are what make
 * its consumers idempotent, so they must exist before the first message is handled. Creating an
 * index that already exists with the same spec is a no-op.
 */
export async function ensureIndexes(db: Db, specs: CollectionIndexes[]): Promise<void> {
  for (const spec of specs) {
    // One index per command: FerretDB 1.24 on PostgreSQL panics (and drops the connection) when a
    // createIndexes naming several indexes meets indexes that already exist, i.e. on every restart.
    for (const index of spec.indexes) await db.collection(spec.collection).createIndexes([index]);
  }
}

export { escapeRegex, removeMatching } from "./erase.ts";
export {
  asTransient,
  classifyMongoError,
  isDuplicateKey,
  isTransientMongoError,
  type MongoErrorClass,
} from "./errors.ts";
export { ImageStore, type StoredImage } from "./images.ts";
export { GroupInserter, type InsertOutcome } from "./inserts.ts";
export { type OutboxEntry, outboxValue, type StoredOutboxEntry } from "./outbox.ts";
export { type RetryBound, type RetryWriteOptions, retryWrite } from "./retry.ts";

/**
 * Lost version claims in a row (another writer took each version first) before a writer gives the
 * work back to its caller's retry: a document written by a few at once settles in a handful; only a
 * storm of writers gets here.
 */
export const MAX_VERSION_CONFLICTS = 5;

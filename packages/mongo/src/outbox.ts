import type { Binary } from "mongodb";

/**
 * An event to publish, made durable in the same single-document write as the state change that
 * caused it (the transactional outbox of the conversation's and the payment service's documents),
 * published after that write.
 */
export interface OutboxEntry {
  id: string;
  topic: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

/** An outbox entry as MongoDB gives it back: the value as BSON Binary. */
export interface StoredOutboxEntry extends Omit<OutboxEntry, "value"> {
  value: Binary | Buffer;
}

/** The entry's bytes, as the producer wants them. */
export function outboxValue(entry: StoredOutboxEntry): Buffer {
  const value = entry.value;
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer);
}

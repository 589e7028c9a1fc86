import { type PartitionerArgs, Partitioners } from "kafkajs";

/**
 * The Java client's partitioner (murmur2 of the key, made positive, modulo the partition count), so
 * that a conversation's key lands on the same partition whichever client produced it: the choice
 * kafkajs's DefaultPartitioner makes, computed in 32-bit integer arithmetic.
 *
 * Why not kafkajs's own: its murmur2 works on 64-bit `Long`s backed by BigInt, an object per
 * operation, and with the Buffer it makes of each string key it came to ~3.4 % of ingress's CPU per
 * webhook in the profile of bench/ingress/run.ts (murmur2 and `utils/long.js`; bench/README.md).
 * Only the low 32 bits of its result are kept, and those depend only on the low 32 bits of what is
 * multiplied and xor-ed, which is what `Math.imul` and `^` compute. partitioner.test.ts checks the
 * two agree on any key and partition count, and against the Java client's own test vectors.
 *
 * A message without a key (none of ours) goes to kafkajs's round robin, unchanged.
 */
export function createJavaCompatiblePartitioner(): (request: PartitionerArgs) => number {
  const roundRobin = Partitioners.DefaultPartitioner();
  return (request) => {
    const { message, partitionMetadata } = request;
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key === null || message.key === undefined) return roundRobin(request);
    return (murmur2(message.key) & 0x7fffffff) % partitionMetadata.length;
  };
}

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of a key's bytes: UTF-8 for a string. */
export function murmur2(key: Buffer | string): number {
  if (typeof key === "string" && isAscii(key)) {
    // Conversation ids are ASCII: their characters are their UTF-8 bytes, and no Buffer is made.
    const text = key;
    return murmur2Bytes(text.length, (i) => text.charCodeAt(i));
  }
  const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : key;
  return murmur2Bytes(bytes.length, (i) => bytes[i] as number);
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

function murmur2Bytes(length: number, byteAt: (i: number) => number): number {
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = byteAt(i) | (byteAt(i + 1) << 8) | (byteAt(i + 2) << 16) | (byteAt(i + 3) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The last one to three bytes, falling through as in Java's switch.
  const rest = length & 3;
  if (rest === 3) h ^= byteAt(whole + 2) << 16;
  if (rest >= 2) h ^= byteAt(whole + 1) << 8;
  if (rest >= 1) {
    h ^= byteAt(whole);
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

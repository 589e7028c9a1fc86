import { createRequire } from "node:module";

/**
 * kafkajs encodes every request in an `Encoder` that starts at 512 bytes and, when a write does not
 * fit, moves to a buffer of the next power of two: `Buffer.alloc`, zero-filled and outside Node's
 * pool. A 2.5 KB webhook event grows its record's encoder, then the batch's, the request's and the
 * framed request's: the zero-filled allocations came to ~4 % of ingress's CPU per webhook in the
 * profile of bench/ingress/run.ts (`FastBuffer` under `ensureAvailable`; bench/README.md), 1.9 µs
 * for a 4 KB buffer against 0.2 µs unfilled (0.08 µs against 1.2 µs at 512 bytes, from the pool).
 *
 * The zeros are never read: every write of the encoder (integers, varints, strings, bytes, other
 * encoders) fills exactly the bytes it moves its offset over, and only the bytes before the offset
 * leave it (`buffer`, `writeEncoder`). So growth takes an unfilled buffer and copies what was
 * written, as before. Were a write ever to skip bytes, those would carry this process's memory to
 * the broker: encoder.test.ts writes random sequences of every write method, and random produce
 * requests, with every grown buffer filled with a marker, fails if one byte differs from kafkajs's
 * own encoding, and fails on another kafkajs version.
 * The encoder's first 512 bytes stay zero-filled (its constructor), so a skipped byte there is a zero.
 */
const PATCHED_VERSION = "2.2.4";

const require = createRequire(import.meta.url);

interface EncoderInternals {
  buf: Buffer;
  offset: number;
  ensureAvailable(length: number): void;
}

/** kafkajs's encoder class, as its request modules load it. */
export function kafkajsEncoder(): {
  prototype: EncoderInternals;
  nextPowerOfTwo(value: number): number;
} {
  return require("kafkajs/src/protocol/encoder.js");
}

/** The next power of two above `value`, as kafkajs sizes its buffers. */
const nextPowerOfTwo = (value: number) => 1 << (32 - Math.clz32(value));

/** The growth this module installs: an unfilled buffer, the written bytes copied. */
export function growUnfilled(this: EncoderInternals, length: number): void {
  if (this.offset + length <= this.buf.length) return;
  const grown = Buffer.allocUnsafe(nextPowerOfTwo(this.offset + length));
  this.buf.copy(grown, 0, 0, this.offset);
  this.buf = grown;
}

/**
 * Replaces kafkajs's `Encoder#ensureAvailable` with growUnfilled (again is harmless); false, and
 * nothing replaced, on a kafkajs version it was not checked against.
 */
export function growEncodersUnfilled(): boolean {
  const version = (require("kafkajs/package.json") as { version: string }).version;
  if (version !== PATCHED_VERSION) return false;
  kafkajsEncoder().prototype.ensureAvailable = growUnfilled;
  return true;
}

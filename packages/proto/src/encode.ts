import { BinaryWriter } from "@bufbuild/protobuf/wire";

/** What a generated message type offers for encoding. */
export interface Encodable<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

// A writer that outgrew this after a rare large message is dropped, so it does not hold the memory.
const KEEP_BELOW_BYTES = 64 * 1024;
let shared = new BinaryWriter();

/**
 * Encodes `message` to a fresh Uint8Array the caller owns, through one writer kept for the process.
 * A new writer per message (what `encode(message).finish()` does) starts at 128 bytes and doubles,
 * so a 2.5 KB webhook event allocated and zero-filled seven ArrayBuffers; under load, V8 spent most
 * of each young-generation pause sweeping them (bench/README.md). Encoding is synchronous, so no
 * other caller can interleave with the shared writer.
 */
export function encodeMessage<T>(type: Encodable<T>, message: T): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = type.encode(message, shared).finish();
  } catch (error) {
    // A throw mid-message (a value out of range) leaves half a message behind: start clean.
    shared = new BinaryWriter();
    throw error;
  }
  if (bytes.byteLength >= KEEP_BELOW_BYTES) shared = new BinaryWriter();
  return bytes;
}

import { createRequire, Module } from "node:module";
import { crc32c } from "@node-rs/crc32";

/**
 * kafkajs checksums every record batch it produces with CRC-32C in JavaScript, a byte at a time:
 * 5.8 µs for a 2.5 KB webhook event, 6 % of ingress's CPU per webhook in the profile of
 * bench/ingress/run.ts (bench/README.md). @node-rs/crc32 computes the same checksum natively
 * (SSE 4.2 where the CPU has it) in 0.55 µs.
 *
 * kafkajs's record batch encoder takes the checksum function from its module
 * `protocol/recordBatch/crc32C/index.js` when it is first required, which kafkajs does lazily, on
 * the first produce request. Putting our module in its place in the require cache before then is
 * the whole change; after then it is too late, and the JavaScript one stays (slower, never wrong).
 * The encoder and the module path are kafkajs internals: crc32c.test.ts fails when they move.
 */
const PATCHED_VERSION = "2.2.4";

const require = createRequire(import.meta.url);

/** Where kafkajs keeps the checksum function and the encoder that takes it. */
export const kafkajsCrcModules = () => ({
  checksum: require.resolve("kafkajs/src/protocol/recordBatch/crc32C/index.js"),
  encoder: require.resolve("kafkajs/src/protocol/recordBatch/v0/index.js"),
});

/** CRC-32C of a buffer as kafkajs's function returns it: an unsigned 32-bit number. */
export const nativeCrc32c = (buffer: Buffer): number => crc32c(buffer);

/**
 * Gives kafkajs's record batch encoder the native checksum; true when it will use it (now or
 * already). False on another kafkajs version, or when the encoder was loaded before this ran.
 */
export function useNativeCrc32c(): boolean {
  const version = (require("kafkajs/package.json") as { version: string }).version;
  if (version !== PATCHED_VERSION) return false;
  const { checksum, encoder } = kafkajsCrcModules();
  if (require.cache[checksum]?.exports === nativeCrc32c) return true;
  if (require.cache[encoder]) return false;
  const module = new Module(checksum);
  module.filename = checksum;
  module.loaded = true;
  module.exports = nativeCrc32c;
  require.cache[checksum] = module;
  return true;
}

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import fc from "fast-check";
import { kafkajsCrcModules, nativeCrc32c, useNativeCrc32c } from "./crc32c.ts";

// Its own process (node --test runs each file in one), so kafkajs's record batch encoder is not
// loaded before the swap, as in a service, where the first produce request comes after createKafka.
const require = createRequire(import.meta.url);
type Encoded = { buffer: Buffer };
type RecordBatch = { RecordBatch: (batch: { records: Encoded[] }) => Promise<Encoded> };
type RecordV0 = (record: { key: Buffer; value: Buffer; headers?: Record<string, string> }) => Encoded;
const kafkajsJsCrc32c = require("kafkajs/src/protocol/recordBatch/crc32C/crc32C.js") as (b: Buffer) => number;

test("the native checksum is kafkajs's CRC-32C, byte for byte, whatever the buffer", () => {
  assert.equal(nativeCrc32c(Buffer.from("123456789")), 0xe3069283); // the CRC-32C check value
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 9000 }), (bytes) => {
      const buffer = Buffer.from(bytes);
      assert.equal(nativeCrc32c(buffer), kafkajsJsCrc32c(buffer));
    }),
    { numRuns: 2000 },
  );
});

test("kafkajs's record batch encoder checksums with it, and the batch's CRC field is right", async () => {
  // Fails on another kafkajs version (the swap is refused) or when the modules move.
  assert.equal(useNativeCrc32c(), true);
  assert.equal(useNativeCrc32c(), true, "a second client finds it in place");
  const { checksum, encoder } = kafkajsCrcModules();
  assert.equal(require(checksum), nativeCrc32c);
  const { RecordBatch } = require(encoder) as RecordBatch;
  assert.ok(
    require.cache[encoder]?.children.some((child) => child.exports === nativeCrc32c),
    "the encoder required the native checksum",
  );
  const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as RecordV0;
  const value = Buffer.alloc(2500, 0xab);
  const batch = await RecordBatch({
    records: [Record({ key: Buffer.from("PN:555"), value, headers: { traceparent: "00-x" } })],
  });
  // FirstOffset int64, Length int32, PartitionLeaderEpoch int32, Magic int8, then the CRC of the rest.
  const bytes = batch.buffer;
  assert.equal(bytes.readInt8(16), 2, "magic byte 2: the layout this test reads");
  assert.equal(bytes.readUInt32BE(17), kafkajsJsCrc32c(bytes.subarray(21)));
  assert.ok(bytes.subarray(21).includes(value), "the record is in the checksummed part");
});

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type PartitionerArgs, Partitioners } from "kafkajs";
import { createJavaCompatiblePartitioner, murmur2 } from "./partitioner.ts";

const metadata = (count: number) =>
  Array.from({ length: count }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: 1,
    replicas: [1],
    isr: [1],
  }));

test("murmur2 gives the Java client's values (Kafka's UtilsTest vectors)", () => {
  const vectors: [string, number][] = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
  ];
  for (const [key, expected] of vectors) {
    assert.equal(murmur2(key), expected, key);
    assert.equal(murmur2(Buffer.from(key)), expected, `${key} as bytes`);
  }
});

test("the partition is kafkajs's DefaultPartitioner's, whatever the key and partition count", () => {
  const ours = createJavaCompatiblePartitioner();
  const theirs = Partitioners.DefaultPartitioner();
  const key = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes)),
    fc.stringMatching(/^(PN:|BS:)[0-9A-Za-z.]{1,40}$/),
  );
  fc.assert(
    fc.property(key, fc.integer({ min: 1, max: 128 }), (k, count) => {
      const request = { topic: "t", partitionMetadata: metadata(count), message: { key: k, value: null } };
      assert.equal(ours(request as PartitionerArgs), theirs(request as PartitionerArgs));
    }),
    { numRuns: 5000 },
  );
});

test("an explicit partition is kept, and a message without a key is spread over the partitions", () => {
  const ours = createJavaCompatiblePartitioner();
  const request = (message: PartitionerArgs["message"]) =>
    ({ topic: "t", partitionMetadata: metadata(4), message }) as PartitionerArgs;
  assert.equal(ours(request({ key: "PN:1", value: null, partition: 3 })), 3);
  const seen = new Set<number>();
  for (let i = 0; i < 8; i++) seen.add(ours(request({ value: null })));
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3]);
});

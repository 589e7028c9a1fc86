import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import fc from "fast-check";
import { growEncodersUnfilled, growUnfilled, kafkajsEncoder } from "./encoder.ts";

const require = createRequire(import.meta.url);
type Encoded = { buffer: Buffer };
const frame = require("kafkajs/src/protocol/request.js") as (request: {
  correlationId: number;
  clientId: string;
  request: { encode: () => Promise<Encoded> };
}) => Promise<Encoded>;
const produceV3 = require("kafkajs/src/protocol/requests/produce/v3/request.js") as (request: object) => {
  encode: () => Promise<Encoded>;
};
const Long = require("kafkajs/src/utils/long.js") as { fromInt(n: number): unknown };

const prototype = kafkajsEncoder().prototype;
const kafkajsGrowth = prototype.ensureAvailable;

/** Grows as growUnfilled does, but fills the new buffer with a marker first: any byte not written shows. */
function growMarked(this: { buf: Buffer; offset: number }, length: number): void {
  if (this.offset + length <= this.buf.length) return;
  const grown = Buffer.alloc(kafkajsEncoder().nextPowerOfTwo(this.offset + length), 0xa5);
  this.buf.copy(grown, 0, 0, this.offset);
  this.buf = grown;
}

const header = fc.dictionary(
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  { maxKeys: 6 },
);
const message = fc.record({
  key: fc.oneof(
    fc.string({ unit: "binary", maxLength: 60 }),
    fc.uint8Array({ maxLength: 60 }).map(Buffer.from),
  ),
  value: fc.oneof(
    fc.uint8Array({ maxLength: 20_000 }).map(Buffer.from),
    fc.string({ unit: "binary", maxLength: 3_000 }),
    fc.constant(null),
  ),
  headers: header,
  timestamp: fc.option(fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }).map(String), {
    nil: undefined,
  }),
});
const topicData = fc.array(
  fc.record({
    topic: fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
    partitions: fc.array(
      fc.record({
        partition: fc.nat(100),
        firstSequence: fc.nat(1_000_000),
        messages: fc.array(message, { minLength: 1, maxLength: 12 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  }),
  { minLength: 1, maxLength: 3 },
);

/** A framed produce request, the bytes kafkajs writes to the broker's socket. */
async function encode(data: unknown, growth: (this: never, length: number) => void): Promise<Buffer> {
  prototype.ensureAvailable = growth as typeof kafkajsGrowth;
  // A batch without timestamps takes the time of encoding: the same for each encoding compared.
  const now = Date.now;
  Date.now = () => 1_765_000_000_000;
  try {
    const request = produceV3({
      acks: -1,
      timeout: 30_000,
      producerId: Long.fromInt(4242),
      producerEpoch: 3,
      topicData: data,
    });
    return Buffer.from((await frame({ correlationId: 7, clientId: "ingress", request })).buffer);
  } finally {
    prototype.ensureAvailable = kafkajsGrowth;
    Date.now = now;
  }
}

test("growing kafkajs's encoders unfilled gives kafkajs's produce requests, byte for byte, with no byte left unwritten", async () => {
  await fc.assert(
    fc.asyncProperty(topicData, async (data) => {
      const theirs = await encode(data, kafkajsGrowth);
      // A byte an encoder moved over without writing would be 0xa5 here and 0 in kafkajs's.
      assert.deepEqual(await encode(data, growMarked), theirs);
      assert.deepEqual(await encode(data, growUnfilled), theirs);
    }),
    { numRuns: 300, endOnFailure: true },
  );
});

type Op = { method: string; args: unknown[] };
type Writer = Record<string, (...args: unknown[]) => unknown>;
const text = fc.string({ unit: "binary", maxLength: 300 });
const blob = fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes));
const scalar: fc.Arbitrary<Op> = fc.oneof(
  fc.integer({ min: -128, max: 127 }).map((v) => ({ method: "writeInt8", args: [v] })),
  fc.integer({ min: -32768, max: 32767 }).map((v) => ({ method: "writeInt16", args: [v] })),
  fc.integer().map((v) => ({ method: "writeInt32", args: [v] })),
  fc.nat(0xffffffff).map((v) => ({ method: "writeUInt32", args: [v] })),
  fc
    .bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
    .map((v) => ({ method: "writeInt64", args: [v.toString()] })),
  fc.double({ noNaN: true }).map((v) => ({ method: "writeDouble", args: [v] })),
  fc.boolean().map((v) => ({ method: "writeBoolean", args: [v] })),
  fc.option(text, { nil: null }).map((v) => ({ method: "writeString", args: [v] })),
  fc.option(text, { nil: null }).map((v) => ({ method: "writeVarIntString", args: [v] })),
  fc.option(text, { nil: null }).map((v) => ({ method: "writeUVarIntString", args: [v] })),
  fc.option(fc.oneof(blob, text), { nil: null }).map((v) => ({ method: "writeBytes", args: [v] })),
  fc.option(fc.oneof(blob, text), { nil: null }).map((v) => ({ method: "writeVarIntBytes", args: [v] })),
  fc.option(fc.oneof(blob, text), { nil: null }).map((v) => ({ method: "writeUVarIntBytes", args: [v] })),
  fc.integer().map((v) => ({ method: "writeVarInt", args: [v] })),
  fc.nat().map((v) => ({ method: "writeUVarInt", args: [v] })),
  fc.integer({ min: -(2 ** 52), max: 2 ** 52 }).map((v) => ({ method: "writeVarLong", args: [v] })),
  blob.map((v) => ({ method: "writeBuffer", args: [v] })),
  fc.array(fc.integer(), { maxLength: 20 }).map((v) => ({ method: "writeArray", args: [v, "int32"] })),
  fc.array(text, { maxLength: 10 }).map((v) => ({ method: "writeNullableArray", args: [v, "string"] })),
);
/** Writes the ops; an op naming nested ops writes an encoder (or several) built from them. */
const op: fc.Arbitrary<Op | { nested: string; ops: Op[][] }> = fc.oneof(
  { weight: 6, arbitrary: scalar },
  {
    weight: 1,
    arbitrary: fc.record({
      nested: fc.constantFrom(
        "writeEncoder",
        "writeEncoderArray",
        "writeArray",
        "writeVarIntArray",
        "writeUVarIntArray",
      ),
      ops: fc.array(fc.array(scalar, { maxLength: 8 }), { minLength: 1, maxLength: 4 }),
    }),
  },
);

test("every write of kafkajs's encoder fills the bytes it moves over, so a grown buffer never shows what it held", () => {
  const Encoder = kafkajsEncoder() as unknown as new (initialSize?: number) => Writer & { buffer: Buffer };
  // Two bytes to start: nearly every write grows the buffer.
  const build = (ops: (Op | { nested: string; ops: Op[][] })[]) => {
    const encoder = new Encoder(1);
    for (const o of ops) {
      if ("nested" in o) {
        const children = o.ops.map((inner) => build(inner));
        if (o.nested === "writeEncoder") encoder[o.nested]?.(children[0]);
        else if (o.nested === "writeArray") encoder.writeArray?.(children, "object");
        else encoder[o.nested]?.(children, "object");
      } else encoder[o.method]?.(...o.args);
    }
    return encoder;
  };
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      prototype.ensureAvailable = kafkajsGrowth;
      const theirs = Buffer.from(build(ops).buffer);
      prototype.ensureAvailable = growMarked as typeof kafkajsGrowth;
      try {
        assert.deepEqual(Buffer.from(build(ops).buffer), theirs);
      } finally {
        prototype.ensureAvailable = kafkajsGrowth;
      }
    }),
    { numRuns: 1000, endOnFailure: true },
  );
});

test("the growth is installed on kafkajs 2.2.4, the version it was checked against", () => {
  // Fails on another kafkajs version (installed nowhere then): read its encoder again first.
  assert.equal(growEncodersUnfilled(), true);
  assert.equal(kafkajsEncoder().prototype.ensureAvailable, growUnfilled);
  prototype.ensureAvailable = kafkajsGrowth;
});

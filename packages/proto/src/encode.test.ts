import assert from "node:assert/strict";
import test from "node:test";
import { encodeMessage } from "./encode.ts";
import { inbound } from "./index.ts";

const event = (id: string, body: string): inbound.InboundEvent =>
  inbound.InboundEvent.fromPartial({
    eventId: id,
    conversationId: "c1",
    payload: { $case: "message", value: { id, content: { $case: "text", value: { body } } } },
  });

test("encodes exactly what a fresh writer would, message after message", () => {
  for (const [id, body] of [
    ["a", "x".repeat(3000)],
    ["b", "short"],
    ["c", "ñandú 🎁 ".repeat(400)],
    ["d", ""],
  ] as const) {
    const shared = encodeMessage(inbound.InboundEvent, event(id, body));
    assert.deepEqual(shared, inbound.InboundEvent.encode(event(id, body)).finish());
    assert.deepEqual(inbound.InboundEvent.decode(shared), event(id, body));
  }
});

test("each result is the caller's own: a later encode does not change an earlier result", () => {
  const first = encodeMessage(inbound.InboundEvent, event("a", "first"));
  const copy = Uint8Array.from(first);
  encodeMessage(inbound.InboundEvent, event("b", "second, and longer than the first"));
  assert.deepEqual(first, copy);
});

test("a message that fails to encode leaves nothing behind for the next one", () => {
  const broken = {
    encode: (_m: unknown, writer = undefined as never) => {
      (writer as { string(s: string): unknown }).string("half a message");
      throw new Error("value out of range");
    },
  };
  // Routed through the shared writer, as a generated encode would be.
  assert.throws(() => encodeMessage(broken as never, {}), /out of range/);
  const after = encodeMessage(inbound.InboundEvent, event("z", "clean"));
  assert.deepEqual(after, inbound.InboundEvent.encode(event("z", "clean")).finish());
});

test("a message above the keep limit still encodes, and so do smaller ones after it", () => {
  const big = encodeMessage(inbound.InboundEvent, event("big", "y".repeat(200_000)));
  assert.equal(inbound.InboundEvent.decode(big).eventId, "big");
  const small = encodeMessage(inbound.InboundEvent, event("s", "small"));
  assert.deepEqual(small, inbound.InboundEvent.encode(event("s", "small")).finish());
});

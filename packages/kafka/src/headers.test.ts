import assert from "node:assert/strict";
import { test } from "node:test";
import { headersToRecord } from "./headers.ts";

test("buffers become strings, a repeated key keeps its last value, missing ones are dropped", () => {
  assert.deepEqual(
    headersToRecord({ a: Buffer.from("1"), b: [Buffer.from("x"), Buffer.from("y")], c: undefined, d: "s" }),
    { a: "1", b: "y", d: "s" },
  );
  assert.deepEqual(headersToRecord(undefined), {});
});

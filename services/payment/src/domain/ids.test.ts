import assert from "node:assert/strict";
import { test } from "node:test";
import {
  readEventId,
  readLocalSessionId,
  readOrderId,
  readOrderNumberText,
  readPaymentRef,
  readSessionId,
} from "./ids.ts";

const injections: unknown[] = [
  { $gt: "" },
  ["cs_1"],
  1,
  null,
  undefined,
  "",
  "cs_1\n",
  "cs_ 1",
  "x".repeat(300),
];

test("ids of the expected shape pass as they are", () => {
  assert.equal(readSessionId("cs_test_a1B2c3"), "cs_test_a1B2c3");
  assert.equal(readSessionId("lcs_Ab-_9"), "lcs_Ab-_9");
  assert.equal(readLocalSessionId(`lcs_${"A".repeat(32)}`), `lcs_${"A".repeat(32)}`);
  assert.equal(readEventId("evt_local_x-Y_1"), "evt_local_x-Y_1");
  assert.equal(readPaymentRef("pi_3MtwBw"), "pi_3MtwBw");
  assert.equal(readOrderId("PNX:US.13491208655302741918/o2"), "PNX:US.13491208655302741918/o2");
  assert.equal(readOrderNumberText("7kq2m9xd"), "7KQ2-M9XD");
});

test("anything else, objects and arrays included, is refused", () => {
  for (const value of injections) {
    for (const read of [readSessionId, readLocalSessionId, readEventId, readPaymentRef, readOrderNumberText])
      assert.equal(read(value), undefined, `${read.name} ${JSON.stringify(value)}`);
  }
  assert.equal(readSessionId("ch_123"), undefined);
  assert.equal(readEventId("cs_123"), undefined);
  assert.equal(readLocalSessionId("lcs_short"), undefined);
  assert.equal(readOrderId("PNX:1 /o1"), undefined);
  assert.equal(readOrderId({ $ne: null }), undefined);
  assert.equal(readOrderId('{"$gt":""}'), undefined);
  assert.equal(readOrderNumberText(`${"-".repeat(30)}7KQ2M9XD`), undefined);
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ALPHABET,
  generateOrderNumber,
  InvalidOrderNumber,
  parseOrderNumber,
  readOrderNumber,
} from "./order-number.ts";

const bytes =
  (...values: number[]) =>
  () =>
    Uint8Array.from(values);

describe("order numbers", () => {
  test("40 bits become 8 Crockford symbols, most significant first, shown as XXXX-XXXX", () => {
    assert.equal(generateOrderNumber(bytes(0, 0, 0, 0, 0)), "0000-0000");
    assert.equal(generateOrderNumber(bytes(255, 255, 255, 255, 255)), "ZZZZ-ZZZZ");
    // 0x0842108421 is 00001 repeated eight times.
    assert.equal(generateOrderNumber(bytes(0x08, 0x42, 0x10, 0x84, 0x21)), "1111-1111");
    // 10000 00000 … : only the first symbol is 16 ("G").
    assert.equal(generateOrderNumber(bytes(0x80, 0, 0, 0, 0)), "G000-0000");
    assert.equal(generateOrderNumber(bytes(0, 0, 0, 0, 31)), "0000-000Z");
  });

  test("a drawn number uses only the alphabet and parses back to itself", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const n = generateOrderNumber();
      assert.match(n, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
      assert.equal(parseOrderNumber(n), n);
      seen.add(n);
    }
    // 40 bits: 2000 draws that repeat would mean the randomness is broken.
    assert.equal(seen.size, 2000);
    assert.equal(ALPHABET.length, 32);
    for (const c of "ILOU") assert.ok(!ALPHABET.includes(c));
  });

  test("parse reads what people type: any case, I and L as 1, O as 0, hyphens anywhere or none", () => {
    assert.equal(parseOrderNumber("7kq2-m9xd"), "7KQ2-M9XD");
    assert.equal(parseOrderNumber("7KQ2M9XD"), "7KQ2-M9XD");
    assert.equal(parseOrderNumber("7-KQ2-M9X-D"), "7KQ2-M9XD");
    assert.equal(parseOrderNumber("iLo0-1lIO"), "1100-1110");
  });

  test("parse refuses anything else, saying what is wrong", () => {
    assert.throws(() => parseOrderNumber("7KQ2-M9XU"), /"U" is not a Crockford base32 symbol/);
    assert.throws(() => parseOrderNumber("7KQ2 M9XD"), /" " is not a Crockford base32 symbol/);
    assert.throws(() => parseOrderNumber("7KQ2-M9X"), /7 symbols, expected 8/);
    assert.throws(() => parseOrderNumber("7KQ2-M9XD0"), /9 symbols, expected 8/);
    assert.throws(() => parseOrderNumber(""), InvalidOrderNumber);
    assert.throws(() => parseOrderNumber("PNX:15550001234/o1"), InvalidOrderNumber);
  });

  test("read: the number, or nothing for a reference that is not one", () => {
    assert.equal(readOrderNumber("7kq2m9xd"), "7KQ2-M9XD");
    assert.equal(readOrderNumber("PNX:15550001234/o1"), undefined);
    assert.equal(readOrderNumber(null), undefined);
    assert.equal(readOrderNumber(""), undefined);
  });
});

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { estimateCents, limiterCost, parsePriceTable } from "./cost.ts";

const table = parsePriceTable(
  JSON.parse(readFileSync(new URL("../../data/prices.json", import.meta.url), "utf8")),
);
const call = { provider: "openai", model: "gpt-image-1", quality: "medium", size: "1024x1024", images: 3 };

test("a listed model costs its price per image times the images", () => {
  assert.equal(estimateCents(table, call), 12.6);
  assert.equal(estimateCents(table, { ...call, quality: "high", size: "1536x1024", images: 1 }), 25);
});

test("the local renderer is free; an unlisted model is never counted as free", () => {
  assert.equal(estimateCents(table, { ...call, provider: "local", model: "resvg" }), 0);
  assert.equal(estimateCents(table, { ...call, model: "gpt-image-9" }), 75);
  assert.equal(estimateCents(table, { ...call, provider: "other" }), 75);
});

test("the limiter counts whole cents, at least one, at most the rule set's maximum", () => {
  assert.equal(limiterCost(12.6, 500), 13);
  assert.equal(limiterCost(0, 500), 1);
  assert.equal(limiterCost(900, 500), 500);
});

test("a malformed price table is refused", () => {
  assert.throws(() => parsePriceTable({ providers: {} }));
  assert.throws(() => parsePriceTable({ fallback: 1, providers: { openai: { m: { q: { s: -1 } } } } }));
});

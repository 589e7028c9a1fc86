import assert from "node:assert/strict";
import { test } from "node:test";
import { RecentIds } from "./recent-ids.ts";

test("remembers up to its capacity, forgetting the least recently stored first", () => {
  const recent = new RecentIds(2);
  recent.add("a");
  recent.add("b");
  recent.add("a");
  recent.add("c");
  assert.equal(recent.has("a"), true);
  assert.equal(recent.has("b"), false);
  assert.equal(recent.has("c"), true);
});

test("capacity 0 remembers nothing", () => {
  const recent = new RecentIds(0);
  recent.add("a");
  assert.equal(recent.has("a"), false);
});

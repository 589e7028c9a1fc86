import assert from "node:assert/strict";
import { test } from "node:test";
import { classify, PermanentError, TransientError } from "@taituri/kafka";
import { asTransient } from "./errors.ts";

test("a store that did not answer is transient, named in the message; other errors stay as they are", () => {
  // The driver's class for a lost or refused connection; isTransientMongoError goes by the name.
  const down = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:27017"), {
    name: "MongoNetworkError",
  });
  const retried = asTransient(down, "order store");
  assert.ok(retried instanceof TransientError);
  assert.equal(classify(retried), "transient");
  assert.equal(retried.message, "order store unavailable: connect ECONNREFUSED 127.0.0.1:27017");
  assert.equal(retried.cause, down);
  const bug = new TypeError("undefined is not a function");
  assert.equal(asTransient(bug, "order store"), bug);
  const poison = new PermanentError("bad input");
  assert.equal(asTransient(poison, "order store"), poison);
  assert.equal(asTransient("a string", "order store"), "a string");
});

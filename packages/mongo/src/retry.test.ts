import assert from "node:assert/strict";
import { test } from "node:test";
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from "mongodb";
import { retryWrite } from "./retry.ts";

/** A write that fails with each of `errors` in turn, then returns "written"; it counts its calls. */
function flaky(...errors: unknown[]) {
  const write = async () => {
    write.calls += 1;
    const error = errors[write.calls - 1];
    if (error !== undefined) throw error;
    return "written";
  };
  write.calls = 0;
  return write;
}

const down = () => new MongoNetworkError("connection refused");
const fast = { initialMs: 1, maxMs: 2 };

test("a write that fails while the store is down is retried until it lands", async () => {
  const write = flaky(down(), new MongoServerSelectionError("no server", {} as never));
  const retries: number[] = [];
  const result = await retryWrite(write, {
    attempts: 5,
    ...fast,
    onRetry: (_error, attempt) => retries.push(attempt),
  });
  assert.equal(result, "written");
  assert.equal(write.calls, 3);
  assert.deepEqual(retries, [1, 2]);
});

test("any error but a store that did not answer is thrown at once", async () => {
  const refused = new MongoServerError({ message: "document failed validation", code: 121 });
  const write = flaky(refused);
  await assert.rejects(retryWrite(write, { attempts: 5, ...fast }), (error) => error === refused);
  assert.equal(write.calls, 1);
});

test("the last attempt's error is thrown when the attempts are spent", async () => {
  const last = down();
  const write = flaky(down(), down(), last, down());
  await assert.rejects(retryWrite(write, { attempts: 3, ...fast }), (error) => error === last);
  assert.equal(write.calls, 3);
});

test("no wait that would end after the deadline: the error is thrown instead", async (t) => {
  // The upper end of the jitter: every wait is its full ceiling, 100 ms.
  t.mock.method(Math, "random", () => 1);
  const write = flaky(down(), down(), down());
  const started = Date.now();
  await assert.rejects(
    retryWrite(write, { until: new Date(started + 150), initialMs: 100, maxMs: 100 }),
    MongoNetworkError,
  );
  // One wait fits before the deadline, a second would pass it.
  assert.equal(write.calls, 2);
  assert.ok(Date.now() - started < 150);

  const past = flaky(down());
  await assert.rejects(retryWrite(past, { until: new Date(Date.now() - 1), ...fast }), MongoNetworkError);
  assert.equal(past.calls, 1);
});

test("a caller may name other errors worth a retry", async () => {
  const brokerDown = Object.assign(new Error("broker unreachable"), { name: "KafkaJSConnectionError" });
  const write = flaky(brokerDown, down());
  const result = await retryWrite(write, {
    attempts: 5,
    ...fast,
    alsoRetry: (error) => error instanceof Error && error.name === "KafkaJSConnectionError",
  });
  assert.equal(result, "written");
  assert.equal(write.calls, 3);
  const unnamed = flaky(brokerDown);
  await assert.rejects(retryWrite(unnamed, { attempts: 5, ...fast }), (error) => error === brokerDown);
  assert.equal(unnamed.calls, 1);
});

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { fixIdleRequestQueueLoop, kafkajsRequestQueue } from "./request-queue.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

interface Queue {
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  checkPendingRequests(): void;
  maybeThrottle(ms: number | null): void;
  push(request: { entry: { correlationId: number }; expectResponse: boolean; sendRequest: () => void }): void;
  destroy(): void;
}

const queues: Queue[] = [];
after(() => {
  for (const queue of queues) queue.destroy();
});

function queue(): Queue {
  const RequestQueue = kafkajsRequestQueue() as unknown as new (options: object) => Queue;
  const q = new RequestQueue({
    maxInFlightRequests: null,
    requestTimeout: 1000,
    enforceRequestTimeout: false,
    clientId: "test",
    broker: "127.0.0.1:9092",
    logger: silent,
  });
  queues.push(q);
  return q;
}

test("the fix applies to the kafkajs version installed (an upgrade must be checked against it)", () => {
  assert.equal(fixIdleRequestQueueLoop(), true);
});

test("a queue with nothing pending and no throttle arms no timer after a check", () => {
  fixIdleRequestQueueLoop();
  const q = queue();
  // What every response does (fulfillRequest): kafkajs 2.2.4 itself arms a 1 ms timer here, whose
  // check arms the next, for as long as the connection lives.
  q.checkPendingRequests();
  assert.equal(q.throttleCheckTimeoutId, null);
});

test("a request held back by a throttle is still sent once the throttle ends", async () => {
  fixIdleRequestQueueLoop();
  const q = queue();
  let sent = 0;
  q.maybeThrottle(30);
  q.push({ entry: { correlationId: 1 }, expectResponse: true, sendRequest: () => sent++ });
  assert.equal(sent, 0, "throttled: held back");
  assert.equal(q.pending.length, 1);
  assert.notEqual(q.throttleCheckTimeoutId, null, "a check is armed for the throttle's end");
  const deadline = Date.now() + 2000;
  while (sent === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(sent, 1);
  assert.equal(q.pending.length, 0);
});

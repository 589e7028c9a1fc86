import { createRequire } from "node:module";

/**
 * kafkajs 2.2.4's per-connection request queue re-arms a timer after every check, and with no
 * throttle in force and nothing pending that timer's delay is `throttledUntil - now`, a negative
 * number, which Node runs after 1 ms (and, from Node 24, warns about: TimeoutNegativeWarning). So
 * from its first response on, each broker connection wakes its process every millisecond for good:
 * ~1,100 wake-ups a second and 32–45 ms of CPU a second in an idle service of ours
 * (docs/infrastructure.md). Upstream: tulios/kafkajs#1556 and #1704, fixes in #1667 and #1768, not
 * released.
 *
 * The replacement arms the timer only when it has something to do: a pending request (checked
 * again when the throttle ends, or in 10 ms as before) or a throttle still running. Nothing is lost
 * by not arming it otherwise: a request pushed later is sent at once or, if it has to wait, arms the
 * timer itself, and every response checks the pending requests again (`fulfillRequest`).
 */
const PATCHED_VERSION = "2.2.4";
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

interface RequestQueueInternals {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

const require = createRequire(import.meta.url);

/** The kafkajs request queue class, as the Kafka client loads it. */
export function kafkajsRequestQueue(): { prototype: RequestQueueInternals } {
  return require("kafkajs/src/network/requestQueue/index.js");
}

let applied = false;

/**
 * Replaces `RequestQueue#scheduleCheckPendingRequests` once per process. Only on the kafkajs version
 * it was written against: another version may have fixed it or changed what it relies on, and
 * starting a client on a patch that no longer fits would be worse than the idle loop.
 */
export function fixIdleRequestQueueLoop(): boolean {
  if (applied) return true;
  const version = (require("kafkajs/package.json") as { version: string }).version;
  if (version !== PATCHED_VERSION) return false;
  kafkajsRequestQueue().prototype.scheduleCheckPendingRequests = function (
    this: RequestQueueInternals,
  ): void {
    if (this.throttleCheckTimeoutId) return;
    const untilUnthrottled = this.throttledUntil - Date.now();
    if (this.pending.length === 0 && untilUnthrottled <= 0) return;
    const delay = untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_REQUESTS_INTERVAL_MS;
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, delay);
  };
  applied = true;
  return true;
}

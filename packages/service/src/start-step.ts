import { setTimeout as sleep } from "node:timers/promises";
import { backoffMs } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";

/** Waits between attempts: a ceiling doubling from initialMs to maxMs, jittered (backoffMs). */
export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
}

/**
 * From a second to half a minute: a dependency back within seconds is found at once, and one away
 * for an hour costs a log line and a connection attempt every 15–30 s.
 */
export const DEFAULT_RETRY: RetryPolicy = { initialMs: 1000, maxMs: 30_000 };

export type StepState = "waiting" | "up" | "stopped";

export interface StartStepOptions {
  /** The name /readyz reports and the log uses: "mongodb", "kafka", "dispatcher consumer". */
  name: string;
  /** Where a dependency is (hosts and ports, never credentials); unset for a step of the service's own. */
  address?: string;
  /** Steps that must be up before this one's first attempt; waiting on them is not a failure. */
  after?: StartStep[];
  /** One try: resolves once the step is done (connected, set up, started), throws otherwise. */
  attempt: () => Promise<void>;
  /** Readiness once up (a ping); by default up is ready. */
  ping?: () => Promise<unknown>;
  logger: Logger;
  retry?: RetryPolicy;
  random?: () => number;
}

/**
 * Something a service needs done before it can work, done in the background so that the process
 * starts, answers /healthz and says on /readyz what it waits for: a dependency reached (and set up:
 * indexes, topics), or a consumer started once its dependencies are. Each failed attempt is one log
 * line naming the step, where it is, a short reason (never the driver's message, which may quote
 * data) and the wait before the next; attempts go on with capped, jittered backoff until one
 * succeeds or the service stops.
 */
export class StartStep {
  readonly name: string;
  readonly #options: StartStepOptions;
  readonly #stopping = new AbortController();
  #state: StepState = "waiting";
  #running: Promise<void> = Promise.resolve();
  #markUp: () => void = () => {};
  /** Resolves once the step is up; never rejects (a stopped step's stays pending). */
  readonly up: Promise<void>;

  constructor(options: StartStepOptions) {
    this.name = options.name;
    this.#options = options;
    this.up = new Promise((resolve) => {
      this.#markUp = resolve;
    });
  }

  get state(): StepState {
    return this.#state;
  }

  /** Starts trying in the background; returns at once. */
  start(): this {
    this.#running = this.#run();
    return this;
  }

  /** For /readyz: throws while the step is not up, or when its ping fails. */
  async check(): Promise<void> {
    if (this.#state !== "up") throw new Error(`${this.name} ${this.#state}`);
    await this.#options.ping?.();
  }

  /**
   * Ends the attempts. An attempt in flight is not waited for here: its client is closed by the
   * caller next, which is what ends it; call settled() after that to wait for it.
   */
  stop(): void {
    if (this.#state !== "up") this.#state = "stopped";
    this.#stopping.abort();
  }

  /** Resolves once the background attempts have ended (after stop(), or once up). */
  settled(): Promise<void> {
    return this.#running;
  }

  async #run(): Promise<void> {
    const { logger, retry = DEFAULT_RETRY, random = Math.random } = this.#options;
    const signal = this.#stopping.signal;
    const stopped = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
    await Promise.race([Promise.all((this.#options.after ?? []).map((step) => step.up)), stopped]);
    const label = this.#options.address ? `${this.name} (${this.#options.address})` : this.name;
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await this.#options.attempt();
      } catch (error) {
        if (signal.aborted) return;
        const waitMs = backoffMs(attempt, retry.initialMs, retry.maxMs, random);
        const reason = failureReason(error);
        const message = this.#options.address
          ? `waiting for ${label}: ${reason}; retrying in ${seconds(waitMs)}`
          : `starting ${label} failed: ${reason}; retrying in ${seconds(waitMs)}`;
        // A dependency's error stays out (a driver's message may quote a document); a start of our
        // own work keeps it, redacted by the logger, since "Error" alone cannot be acted on.
        logger.warn(
          {
            step: this.name,
            reason,
            attempt,
            retryInMs: waitMs,
            ...(this.#options.address ? {} : { err: error }),
          },
          message,
        );
        await sleep(waitMs, undefined, { signal }).catch(() => {});
        continue;
      }
      if (signal.aborted) return;
      this.#state = "up";
      this.#markUp();
      // A start that found everything there says nothing more than the "ready" line after it.
      if (attempt === 1) logger.debug({ step: this.name }, `${label} up`);
      else logger.info({ step: this.name, attempts: attempt }, `${label} up after ${attempt} attempts`);
      return;
    }
  }
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** System error codes a connection fails with, in words. */
const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNABORTED: "connection aborted",
  CERT_HAS_EXPIRED: "TLS certificate expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "TLS certificate not trusted",
  SELF_SIGNED_CERT_IN_CHAIN: "TLS certificate not trusted",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "TLS certificate not trusted",
  ERR_TLS_CERT_ALTNAME_INVALID: "TLS certificate for another host",
};

/**
 * A short, data-free reason for a failed attempt: the system error found anywhere in the error's
 * causes (drivers wrap it: MongoServerSelectionError's reason.servers, kafkajs's originalError),
 * else what the error's name says (authentication, time-out), else the name itself. Drivers'
 * messages are left out: a MongoDB error may quote a document's key, i.e. a shopper's number.
 */
export function failureReason(error: unknown): string {
  const seen = new Set<unknown>();
  const names: string[] = [];
  const queue: unknown[] = [error];
  while (queue.length > 0) {
    const current = queue.shift();
    if (typeof current !== "object" || current === null || seen.has(current)) continue;
    seen.add(current);
    const { code, name } = current as { code?: unknown; name?: unknown };
    if (typeof code === "string" && REASONS[code]) return REASONS[code];
    if (typeof name === "string") names.push(name);
    const fields = current as Record<string, unknown>;
    queue.push(fields.cause, fields.originalError, fields.error);
    if (Array.isArray(fields.errors)) queue.push(...fields.errors);
    const servers = (fields.reason as { servers?: unknown } | undefined)?.servers;
    if (servers instanceof Map) for (const server of servers.values()) queue.push(server);
  }
  if (names.some((name) => /auth/i.test(name))) return "authentication failed";
  // A server selection fails by timing out: no server answered within serverSelectionTimeoutMS.
  if (names.some((name) => /timeout|serverselection/i.test(name))) return "timed out";
  return names[0] ?? String(typeof error);
}

/** The hosts of a mongodb:// or mongodb+srv:// URL, without its credentials, database or options. */
export function mongoAddress(url: string): string {
  const rest = url.replace(/^[a-z+]+:\/\//i, "");
  const hosts = rest.slice(rest.lastIndexOf("@", rest.search(/[/?]|$/)) + 1).split(/[/?]/)[0];
  return hosts || "no host";
}

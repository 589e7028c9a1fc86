import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import type { Bucket } from "../domain/gcra.ts";
import type { Limit, RuleSet } from "../domain/rules.ts";
import { decideScript, refundScript } from "./script.ts";

export interface SubjectIds {
  shopId: string;
  shopperId: string;
}

export interface LimitOutcome {
  limit: Limit;
  allowed: boolean;
  remaining: number;
  resetAfterMs: number;
  retryAfterMs: number;
}

export interface Outcome {
  allowed: boolean;
  retryAfterMs: number;
  replayed: boolean;
  limits: LimitOutcome[];
}

export type RefundResult = "refunded" | "already" | "not-consumed" | "not-found";

/** The idempotency key was used before for a different subject, rule set or cost. */
export class IdempotencyConflictError extends Error {
  constructor(key: string) {
    super(`idempotency key "${key}" was used for a different request`);
    this.name = "IdempotencyConflictError";
  }
}

/** A subject lacks the id that one of its limits counts by. */
export class SubjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SubjectError";
  }
}

/**
 * Redis keys. Every key of the limiter carries the same hash tag, `{<prefix>}`, so one call's
 * buckets (shopper, shop and global at once) and its idempotency record live in one Redis Cluster
 * slot and one script can update them atomically. The price: one deployment's limiter load sits on
 * one node (about 100k script calls/s); another deployment or tenant gets its own prefix.
 */
export function keysFor(prefix: string) {
  const tag = `{${prefix}}`;
  return {
    bucket: (limit: Limit, subject: SubjectIds) => {
      if (limit.scope === "global") return `${tag}:b:${limit.name}`;
      if (!subject.shopId) throw new SubjectError(`limit "${limit.name}" needs subject.shop_id`);
      if (limit.scope === "shop") return `${tag}:b:${limit.name}:${subject.shopId}`;
      if (!subject.shopperId) throw new SubjectError(`limit "${limit.name}" needs subject.shopper_id`);
      return `${tag}:b:${limit.name}:${subject.shopId}:${subject.shopperId}`;
    },
    // One namespace per caller: a caller's Refund cannot reach another caller's consumes. The owner
    // is percent-encoded, so it holds no ":" and owner and key cannot be confused.
    idempotency: ({ owner, key }: OwnedKey) => `${tag}:i:${encodeURIComponent(owner)}:${key}`,
    // Any key of the slot: KEYS[1] when a call has no idempotency key.
    anchor: `${tag}:anchor`,
  };
}

/** An idempotency key and the caller that chose it (a token's client, see @taituri/oidc callerOf). */
export interface OwnedKey {
  owner: string;
  key: string;
}

export interface StoreOptions {
  /** One Redis, or a Redis Cluster: every key of a call is in one slot, so scripts run unchanged. */
  redis: Redis | Cluster;
  prefix: string;
  /** A fixed clock for tests; by default the script asks Redis for TIME, one clock for all replicas. */
  now?: () => number;
}

/** Consume, Peek, Refund and Reset on Redis: each one script call, all or nothing. */
export function createStore(options: StoreOptions) {
  const { redis } = options;
  const keys = keysFor(options.prefix);
  const scripts = new Map<string, string>();
  const clock = () => (options.now ? String(options.now()) : "");

  // EVALSHA first; EVAL once when Redis does not know the script yet (restart, failover, flush).
  const run = async (script: string, keyList: string[], args: (string | number)[]): Promise<string> => {
    let sha = scripts.get(script);
    if (!sha) {
      sha = createHash("sha1").update(script).digest("hex");
      scripts.set(script, sha);
    }
    try {
      return (await redis.evalsha(sha, keyList.length, ...keyList, ...args)) as string;
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      return (await redis.eval(script, keyList.length, ...keyList, ...args)) as string;
    }
  };

  const bucketsOf = (ruleSet: RuleSet, cost: number): Bucket[] =>
    ruleSet.limits.map((limit) => ({
      periodMs: limit.periodMs,
      limit: limit.limit,
      shadow: limit.shadow,
      // Peek passes cost 0: it reads the buckets without moving them.
      cost: limit.unit === "cost" || cost === 0 ? cost : 1,
    }));

  const decide = async (
    mode: "c" | "p",
    ruleSet: RuleSet,
    subject: SubjectIds,
    cost: number,
    idempotency: OwnedKey | undefined,
    ttlMs: number,
  ): Promise<Outcome> => {
    const bucketKeys = ruleSet.limits.map((limit) => keys.bucket(limit, subject));
    const fingerprint = idempotency ? `${ruleSet.name}|${subject.shopId}|${subject.shopperId}|${cost}` : "";
    const args: (string | number)[] = [mode, clock(), ttlMs, fingerprint, ruleSet.limits.length];
    for (const bucket of bucketsOf(ruleSet, cost))
      args.push(bucket.periodMs, bucket.limit, bucket.shadow ? 1 : 0, bucket.cost);
    const reply = await run(
      decideScript,
      [idempotency ? keys.idempotency(idempotency) : keys.anchor, ...bucketKeys],
      args,
    );
    if (reply === "Emismatch") throw new IdempotencyConflictError(idempotency?.key ?? "");
    const numbers = reply.slice(1).split(",").map(Number);
    return {
      allowed: numbers[0] === 1,
      retryAfterMs: numbers[1] ?? 0,
      replayed: reply[0] === "R",
      limits: ruleSet.limits.map((limit, index) => ({
        limit,
        allowed: numbers[2 + index * 4] === 1,
        remaining: numbers[3 + index * 4] ?? 0,
        resetAfterMs: numbers[4 + index * 4] ?? 0,
        retryAfterMs: numbers[5 + index * 4] ?? 0,
      })),
    };
  };

  return {
    consume: (
      ruleSet: RuleSet,
      subject: SubjectIds,
      cost: number,
      idempotency: OwnedKey | undefined,
      ttlMs: number,
    ) => decide("c", ruleSet, subject, cost, idempotency, ttlMs),
    /**
     * Current usage without taking anything: remaining and reset as they are now; allowed and
     * retry-after for a call that takes 1 unit from each bucket.
     */
    async peek(ruleSet: RuleSet, subject: SubjectIds): Promise<Outcome> {
      const outcome = await decide("p", ruleSet, subject, 0, undefined, 0);
      for (const state of outcome.limits) {
        const interval = state.limit.periodMs / state.limit.limit;
        state.allowed = state.remaining >= 1;
        state.retryAfterMs = state.allowed
          ? 0
          : Math.max(0, Math.ceil(state.resetAfterMs + interval - state.limit.periodMs));
      }
      outcome.allowed = outcome.limits.every((state) => state.allowed || state.limit.shadow);
      outcome.retryAfterMs = Math.max(0, ...outcome.limits.map((state) => state.retryAfterMs));
      return outcome;
    },

    async refund(idempotency: OwnedKey): Promise<RefundResult> {
      const record = keys.idempotency(idempotency);
      // The record's bucket keys can only change from absent to present, so two tries suffice.
      for (let attempt = 0; attempt < 3; attempt++) {
        const listed = (await redis.hget(record, "k")) ?? "";
        const bucketKeys = listed ? listed.split(" ") : [];
        const result = await run(refundScript, [record, ...bucketKeys], [clock(), listed]);
        if (result !== "changed") return result as RefundResult;
      }
      throw new Error(`idempotency record ${record} kept changing`);
    },

    /**
     * Deletes the subject's shopper and shop buckets of the rule set (never the global ones, which
     * are everybody's); returns how many existed.
     */
    async reset(ruleSet: RuleSet, subject: SubjectIds): Promise<number> {
      const own = ruleSet.limits.filter((limit) => limit.scope !== "global");
      if (own.length === 0) return 0;
      return redis.del(...own.map((limit) => keys.bucket(limit, subject)));
    },
  };
}

export type Store = ReturnType<typeof createStore>;

/** A literal string in a Redis glob pattern (SCAN's MATCH). */
const globLiteral = (text: string) => text.replace(/[*?[\]\\]/g, "\\$&");

/**
 * Deletes a shopper's limiter keys, for `npm run erase`: their buckets (the shopper id is the key's
 * last part) and the idempotency records of their rounds (the key is the round id, which begins with
 * the conversation id, and the record's fingerprint names the shopper); with `dryRun` only counts.
 * Found with SCAN and a MATCH pattern, on every primary of a cluster: KEYS would block Redis while it
 * reads every key. Returns the count per key pattern, the patterns shown without the shopper's ids.
 */
export async function eraseShopper(
  redis: Redis | Cluster,
  prefix: string,
  shopper: { shopperIds: string[]; conversationIds: string[] },
  dryRun: boolean,
): Promise<Record<string, number>> {
  const tag = globLiteral(`{${prefix}}`);
  const patterns: [string, string][] = [
    ...shopper.shopperIds.map((id): [string, string] => [
      `${prefix} buckets`,
      `${tag}:b:*:*:${globLiteral(id)}`,
    ]),
    ...shopper.conversationIds.map((id): [string, string] => [
      `${prefix} idempotency records`,
      `${tag}:i:*:${globLiteral(`${id}/`)}*`,
    ]),
  ];
  const nodes = "nodes" in redis ? redis.nodes("master") : [redis];
  const counts: Record<string, number> = { [`${prefix} buckets`]: 0, [`${prefix} idempotency records`]: 0 };
  for (const [name, pattern] of patterns)
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        if (keys.length === 0) continue;
        counts[name] = (counts[name] ?? 0) + (dryRun ? keys.length : await node.del(...keys));
      } while (cursor !== "0");
    }
  return counts;
}

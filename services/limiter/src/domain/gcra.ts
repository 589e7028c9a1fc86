/**
 * The generic cell rate algorithm, one bucket per limit: `limit` units per `periodMs`, refilled
 * evenly (one unit every periodMs / limit). The state of a bucket is its theoretical arrival time
 * (TAT, ms): the bucket is full when TAT ≤ now and holds (periodMs - (TAT - now)) / interval units
 * otherwise. Unlike fixed windows there is no boundary where a second full burst becomes available:
 * over any interval d at most limit + d / interval units are admitted.
 *
 * This is the reference model: the Lua script in adapters/script.ts does the same arithmetic, in the
 * same order, and a property test checks that both agree.
 */
export interface Bucket {
  periodMs: number;
  limit: number;
  /** Units this call takes from the bucket. */
  cost: number;
  shadow: boolean;
}

export interface BucketDecision {
  allowed: boolean;
  remaining: number;
  resetAfterMs: number;
  retryAfterMs: number;
  /** TAT to store if the call is admitted. */
  newTat: number;
}

/** Rounding slack: periods that the limit does not divide give non-integral intervals. */
const epsilon = 1e-3;

export function evaluate(bucket: Bucket, storedTat: number | undefined, now: number): BucketDecision {
  const interval = bucket.periodMs / bucket.limit;
  const tat = storedTat === undefined || storedTat < now ? now : storedTat;
  const newTat = tat + bucket.cost * interval;
  const allowed = newTat - now <= bucket.periodMs + epsilon;
  const used = allowed ? newTat : tat;
  return {
    allowed,
    remaining: Math.max(0, Math.floor((bucket.periodMs - (used - now)) / interval + epsilon)),
    resetAfterMs: Math.ceil(used - now),
    retryAfterMs: allowed ? 0 : Math.ceil(newTat - bucket.periodMs - now),
    newTat,
  };
}

export interface Decision {
  allowed: boolean;
  retryAfterMs: number;
  limits: BucketDecision[];
}

/**
 * All or nothing: the call is admitted only if every enforced bucket admits it, and then every
 * bucket that admitted it (shadow ones included) takes its cost. A shadow bucket that would deny
 * is reported but neither denies nor takes the cost, so it behaves as if it were enforced.
 */
export function decide(buckets: Bucket[], tats: (number | undefined)[], now: number): Decision {
  const limits = buckets.map((bucket, index) => evaluate(bucket, tats[index], now));
  let allowed = true;
  let retryAfterMs = 0;
  for (const [index, limit] of limits.entries()) {
    if (limit.allowed || buckets[index]?.shadow) continue;
    allowed = false;
    retryAfterMs = Math.max(retryAfterMs, limit.retryAfterMs);
  }
  return { allowed, retryAfterMs, limits };
}

/**
 * When to try a paid order again after failed attempt `attempt` (1-based): "full jitter", a uniform
 * draw between 0 and base·2^(attempt-1), capped at max. The jitter spreads the retries of many
 * orders that failed together (a shop that was down) instead of sending them back in one burst;
 * the cap keeps a shop that is down for days being tried every max at worst. Never "give up": a
 * paid order must reach the shop, so there is no last attempt.
 */
export function retryDelayMs(
  attempt: number,
  policy: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  return Math.floor(random() * retryCeilingMs(attempt, policy));
}

/** The most retryDelayMs waits after failed attempt `attempt`. */
export function retryCeilingMs(attempt: number, policy: { baseMs: number; maxMs: number }): number {
  // 2^1023 is the largest finite power; Math.min folds Infinity to the cap anyway.
  const exponent = Math.min(Math.max(attempt, 1) - 1, 1023);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
}

/**
 * What the services agree on beside the message shapes (protos/) and the topics that carry them
 * (the record registry of @taituri/kafka): limits both sides of a topic must apply alike.
 * Imported by producer and consumer, so a change here changes both.
 */

/**
 * A paid round's timing, here because two services keep its two ends: generation's provider call
 * and lease, and the conversation's deadline for the round. A worker that dies mid-call is taken
 * over when its lease ends, and the take-over's call may last the whole timeout: the deadline
 * leaves room for both, so a take-over's designs (paid for) reach the shopper instead of landing
 * after they were told the round failed. contracts.test.ts holds the relation; each service's
 * config may change its side, within it.
 */
export const ROUND_TIMING = {
  /** One call to the image provider (gpt-image-1 at high quality takes up to about a minute). */
  providerTimeoutMs: 60_000,
  /** Kept free at the end of a lease to store the images and record the result. */
  attemptMarginMs: 5_000,
  /** A claimed round belongs to its worker this long: at least a whole call and the margin. */
  leaseMs: 65_000,
  /** The conversation gives up on a round after this long: a lease, a take-over's call, slack. */
  deadlineMs: 150_000,
} as const;

/** The longest a round may take when a worker dies mid-call and another takes over. */
export const worstRoundMs = (t: { leaseMs: number; providerTimeoutMs: number; attemptMarginMs: number }) =>
  t.leaseMs + t.providerTimeoutMs + t.attemptMarginMs;

/**
 * Longest recipient name, in characters (code points). The conversation refuses longer answers and
 * asks again; generation draws and prompts with the name as it is, never a cut version.
 */
export const RECIPIENT_NAME_MAX_LENGTH = 40;

/**
 * An amount in minor units (every `amount` in the protos, every catalog price) as a person reads
 * it in `language`. The currency says how many minor units make one (JPY none, EUR two, KWD three).
 */
export function formatPrice(minor: number, currency: string, language: string): string {
  const format = new Intl.NumberFormat(language, { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(minor / 10 ** digits);
}

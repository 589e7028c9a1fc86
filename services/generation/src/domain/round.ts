import { contracts } from "@taituri/proto";

/**
 * A round's life in the `generation_rounds` collection (one document per round, `_id` = round id, so
 * the unique `_id` index is what makes a second claim fail):
 *
 *   (none) ──claim──▶ in_progress (lease until T, attempts = 1)
 *   in_progress ──lease expired, attempts < max──▶ in_progress (new lease, attempts + 1)  "take over"
 *   in_progress ──lease expired, attempts = max──▶ failed ("interrupted")                  "exhausted"
 *   in_progress ──worker finishes──▶ completed | failed | rejected (result stored, published = false)
 *   finished, published = false ──publish acknowledged──▶ published = true
 *
 * Each claim (first or take-over) makes at most one call the provider may charge for, so a round
 * costs at most `maxAttempts` paid calls (docs/generation.md).
 */
export type RoundState = "in_progress" | "completed" | "failed" | "rejected";

export interface RoundView {
  state: RoundState;
  attempts: number;
  leaseUntil: Date;
  published: boolean;
}

export type ClaimStep =
  /** Finished earlier: publish the stored result again only if its publish was never acknowledged. */
  | { kind: "finished"; published: boolean }
  /** Another worker holds a live lease: leave it alone, look again later. */
  | { kind: "busy"; leaseUntil: Date }
  /** The holder's lease ran out (it crashed or hung): this delivery may take the round over. */
  | { kind: "take_over"; attempt: number }
  /** The lease ran out on the last allowed attempt: the round fails without another paid call. */
  | { kind: "exhausted" };

/** What a delivery of an already claimed round may do. Pure: the store turns it into conditional writes. */
export function nextStep(round: RoundView, now: Date, maxAttempts: number): ClaimStep {
  if (round.state !== "in_progress") return { kind: "finished", published: round.published };
  if (round.leaseUntil.getTime() > now.getTime()) return { kind: "busy", leaseUntil: round.leaseUntil };
  if (round.attempts < maxAttempts) return { kind: "take_over", attempt: round.attempts + 1 };
  return { kind: "exhausted" };
}

/** How a call to an image provider ended. */
export type CallOutcome =
  | "ok"
  /** The provider refused the content (400 content_policy_violation / moderation_blocked). */
  | "content_policy"
  /** 429 before processing: nothing was generated, nothing charged. */
  | "rate_limited"
  /** The account is out of credit (429 insufficient_quota): retrying cannot help. */
  | "quota"
  /** Connection refused or name not resolved: the request never reached the provider. */
  | "unreachable"
  /** Any other 4xx: our request or credentials are wrong. */
  | "bad_request"
  | "server_error"
  | "timeout"
  /** A 2xx whose body is not the images we asked for. */
  | "malformed"
  /**
   * Abandoned by this worker while shutting down (past its drain deadline, GENERATION_DRAIN_MS):
   * the provider had the request and may still make and bill the images.
   */
  | "cancelled";

/**
 * Could the provider have charged for a call that ended this way? A 5xx, a timeout, a garbled
 * answer or a call we abandoned may come after the images were generated (and billed), so they
 * count as paid.
 */
export function mayHaveCharged(outcome: CallOutcome): boolean {
  return (
    outcome === "ok" ||
    outcome === "server_error" ||
    outcome === "timeout" ||
    outcome === "malformed" ||
    outcome === "cancelled"
  );
}

/** Retried only where the provider guarantees no charge and waiting can help. */
export function isRetryable(outcome: CallOutcome): boolean {
  return outcome === "rate_limited" || outcome === "unreachable";
}

/** Why a round failed, as the "failed" event says it: a stable code, then what the shopper can do. */
export const FailureReason = {
  contentPolicy:
    "content_policy: The design service declined this request under its content rules. Try a different name, theme or style.",
  providerUnavailable:
    "provider_unavailable: The design service is not available right now. Nothing was charged; please try again in a few minutes.",
  limiterUnavailable:
    "limiter_unavailable: We cannot start new designs right now. Nothing was charged; please try again in a few minutes.",
  interrupted: "interrupted: Creating your designs was interrupted. Nothing was charged; please try again.",
  invalidRequest: "invalid_request: This request cannot be made into designs. Nothing was charged.",
} as const;

/**
 * What makes a request one no worker may start: a name longer than the contract allows (the
 * conversation never sends one; an older or foreign producer might). Refused before anything is
 * claimed or paid, and the conversation is told at once instead of at its deadline.
 */
export function requestProblem(request: { recipient: string }): string | undefined {
  const length = [...request.recipient].length;
  if (length > contracts.RECIPIENT_NAME_MAX_LENGTH)
    return `recipient name has ${length} characters, over ${contracts.RECIPIENT_NAME_MAX_LENGTH}`;
  return undefined;
}

export function failureReasonFor(outcome: Exclude<CallOutcome, "ok">): string {
  return outcome === "content_policy" ? FailureReason.contentPolicy : FailureReason.providerUnavailable;
}

import { type Authorization, authorize, type CallerClaims, type CallerRule } from "@taituri/oidc/access";

/** The LimiterService's RPCs, as they are named in metrics. */
export type Rpc = "consume" | "refund" | "peek" | "reset_usage";

/** Who may call the limiter (config: LIMITER_CALLERS, LIMITER_ADMIN_SCOPE, LIMITER_ADMIN_SUBJECTS). */
export interface AccessPolicy {
  /** Callers (client_id, azp or sub) allowed at all. */
  callers: readonly string[];
  /** The scope Peek and ResetUsage need. */
  adminScope: string;
  /** Callers that are admins by identity, for issuers that put no scopes in tokens. */
  adminSubjects: readonly string[];
}

/**
 * Consume and Refund serve the listed callers (generation); a Refund only ever reaches the
 * caller's own idempotency keys (adapters/store.ts). Peek and ResetUsage read or wipe any
 * subject's usage: they are admin RPCs, for a listed caller holding the admin scope or an admin
 * subject.
 */
export function ruleFor(rpc: Rpc, policy: AccessPolicy): CallerRule {
  if (rpc === "consume" || rpc === "refund") return { callers: policy.callers };
  return { callers: policy.callers, scope: policy.adminScope, trusted: policy.adminSubjects };
}

export function decideAccess(rpc: Rpc, claims: CallerClaims, policy: AccessPolicy): Authorization {
  return authorize(claims, ruleFor(rpc, policy));
}

const RPC_NAMES: Record<Rpc, string> = {
  consume: "Consume",
  refund: "Refund",
  peek: "Peek",
  reset_usage: "ResetUsage",
};

/** What a refused caller is told (PERMISSION_DENIED details): the rule, and who it was. */
export function refusal(
  rpc: Rpc,
  decision: Extract<Authorization, { allowed: false }>,
  policy: AccessPolicy,
) {
  const name = RPC_NAMES[rpc];
  const who = decision.caller === undefined ? "a token naming no caller" : `"${decision.caller}"`;
  return decision.missing === "scope"
    ? `${name} needs the "${policy.adminScope}" scope or an admin subject; ${who} has neither`
    : `${who} may not call ${name} (not in LIMITER_CALLERS)`;
}

import { type Authorization, authorize, type CallerClaims, type CallerRule } from "@taituri/oidc/access";

/** The internal API's routes. */
export type InternalRoute = "read_order" | "refund";

/** Who may call the internal API (config: PAYMENT_INTERNAL_CALLERS, PAYMENT_ADMIN_SCOPE, PAYMENT_ADMIN_SUBJECTS). */
export interface InternalAccess {
  /** Callers (client_id, azp or sub) allowed at all. */
  callers: readonly string[];
  /** The scope a refund needs. */
  adminScope: string;
  /** Callers that are admins by identity, for issuers that put no scopes in tokens. */
  adminSubjects: readonly string[];
}

/**
 * Reading an order (personal data: the delivery address, the recipient) is for the listed callers;
 * giving money back also needs the admin scope, or an admin subject.
 */
export function internalRule(route: InternalRoute, access: InternalAccess): CallerRule {
  if (route === "read_order") return { callers: access.callers, trusted: access.adminSubjects };
  return { callers: access.callers, scope: access.adminScope, trusted: access.adminSubjects };
}

export function decideInternal(
  route: InternalRoute,
  claims: CallerClaims,
  access: InternalAccess,
): Authorization {
  return authorize(claims, internalRule(route, access));
}

/** What a refused caller is told (the 403's error). */
export function internalRefusal(
  decision: Extract<Authorization, { allowed: false }>,
  access: InternalAccess,
): string {
  const who = decision.caller === undefined ? "a token naming no caller" : `"${decision.caller}"`;
  return decision.missing === "scope"
    ? `a refund needs the "${access.adminScope}" scope or an admin subject; ${who} has neither`
    : `${who} may not call the payment service's internal API (not in PAYMENT_INTERNAL_CALLERS)`;
}

/** The claims that say who is calling and what it may do. */
export interface CallerClaims {
  sub?: unknown;
  azp?: unknown;
  client_id?: unknown;
  scope?: unknown;
}

/**
 * Who is calling: the OAuth client of an access token (RFC 9068 `client_id`, else OIDC's `azp`),
 * else its `sub`. A client-credentials token of the local issuer names the client in `sub`;
 * Keycloak's and Auth0's name it in `azp`/`client_id` (their `sub` is a service-account user);
 * a Kubernetes projected token has only `sub` (system:serviceaccount:<namespace>:<name>).
 */
export function callerOf(claims: CallerClaims): string | undefined {
  for (const claim of [claims.client_id, claims.azp, claims.sub]) {
    if (typeof claim === "string" && claim !== "") return claim;
  }
  return undefined;
}

/** The token's scopes: `scope` is a space-separated string (RFC 8693, 9068); some issuers send an array. */
export function scopesOf(claims: CallerClaims): string[] {
  if (typeof claims.scope === "string") return claims.scope.split(" ").filter(Boolean);
  if (Array.isArray(claims.scope)) return claims.scope.filter((s): s is string => typeof s === "string");
  return [];
}

/** Who may use one endpoint or RPC. */
export interface CallerRule {
  /** The callers (see callerOf) allowed; anyone else is refused, whatever the token's scopes. */
  callers: readonly string[];
  /** A scope a listed caller's token must also hold (the admin operations). */
  scope?: string;
  /**
   * Callers allowed without being listed and without the scope: for issuers that put no scopes in
   * tokens (Kubernetes service-account tokens), an admin is named by identity alone.
   */
  trusted?: readonly string[];
}

export type Authorization =
  | { allowed: true; caller: string }
  | { allowed: false; caller: string | undefined; missing: "caller" | "scope" };

/** Decides a verified token against a rule; the service turns a refusal into 403 / PERMISSION_DENIED. */
export function authorize(claims: CallerClaims, rule: CallerRule): Authorization {
  const caller = callerOf(claims);
  if (caller === undefined) return { allowed: false, caller, missing: "caller" };
  if (rule.trusted?.includes(caller)) return { allowed: true, caller };
  if (!rule.callers.includes(caller)) return { allowed: false, caller, missing: "caller" };
  if (rule.scope !== undefined && !scopesOf(claims).includes(rule.scope))
    return { allowed: false, caller, missing: "scope" };
  return { allowed: true, caller };
}

/** Who may run the admin RPCs (ResetUsage): a scope in the token, or a listed subject. */
export interface AdminPolicy {
  scope: string;
  subjects: readonly string[];
}

/**
 * True when verified claims carry the admin scope (`scope` is a space-separated string per RFC
 * 8693/9068; some issuers send an array) or name an admin subject. Anything else is not admin.
 */
export function isAdmin(claims: { sub?: unknown; scope?: unknown }, policy: AdminPolicy): boolean {
  if (typeof claims.sub === "string" && policy.subjects.includes(claims.sub)) return true;
  const scopes =
    typeof claims.scope === "string"
      ? claims.scope.split(" ")
      : Array.isArray(claims.scope)
        ? claims.scope
        : [];
  return scopes.includes(policy.scope);
}

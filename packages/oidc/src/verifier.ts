import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from "jose";

/** A token that is missing, malformed, expired, for someone else or not signed by the issuer. */
export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthError";
  }
}

export interface VerifierOptions {
  /** Expected `iss`; its discovery document is `${issuer}/.well-known/openid-configuration`. */
  issuer: string;
  /** Expected `aud` (this service's name or URL). */
  audience: string;
  /** Accepted clock skew in seconds. */
  clockToleranceSeconds?: number;
  /** Verified tokens kept (until they expire) so a busy caller's token is checked once. */
  cacheSize?: number;
}

export interface Verifier {
  /** Verifies `authorization` header value or bare token; resolves to the claims or throws AuthError. */
  verify(token: string | undefined): Promise<JWTPayload>;
}

/**
 * Verifies bearer tokens against an OIDC issuer: follows its discovery document to the JWKS (jose
 * fetches and caches the keys, refetching on an unknown key id), then checks signature, issuer,
 * audience and expiry. The discovery document is fetched on first use, so a service can start
 * before its issuer; a failed fetch is retried on the next call.
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = options.issuer.replace(/\/$/, "");
  let jwks: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  const keys = () => {
    jwks ??= discover(issuer).catch((error: unknown) => {
      jwks = undefined;
      throw error;
    });
    return jwks;
  };
  const cacheSize = options.cacheSize ?? 10_000;
  // token → claims; a Map keeps insertion order, so the oldest entry is evicted first.
  const cache = new Map<string, JWTPayload>();
  const tolerance = options.clockToleranceSeconds ?? 5;

  return {
    async verify(header) {
      const token = header?.startsWith("Bearer ") ? header.slice(7).trim() : header?.trim();
      if (!token) throw new AuthError("missing bearer token");
      const cached = cache.get(token);
      if (cached && (cached.exp ?? 0) + tolerance > Date.now() / 1000) return cached;
      if (cached) cache.delete(token);
      try {
        const { payload } = await jwtVerify(token, await keys(), {
          issuer: [issuer, `${issuer}/`],
          audience: options.audience,
          clockTolerance: tolerance,
          requiredClaims: ["exp", "sub"],
        });
        if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
        cache.set(token, payload);
        return payload;
      } catch (error) {
        if (error instanceof errors.JOSEError) throw new AuthError(`${error.code}: ${error.message}`);
        throw error;
      }
    },
  };
}

async function discover(issuer: string): Promise<ReturnType<typeof createRemoteJWKSet>> {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`OIDC discovery at ${issuer} answered ${response.status}`);
  const document = (await response.json()) as { issuer?: string; jwks_uri?: string };
  if (document.issuer?.replace(/\/$/, "") !== issuer)
    throw new Error(`OIDC discovery at ${issuer} names another issuer: ${document.issuer}`);
  if (!document.jwks_uri) throw new Error(`OIDC discovery at ${issuer} has no jwks_uri`);
  return createRemoteJWKSet(new URL(document.jwks_uri));
}

export interface TokenSourceOptions {
  /** The issuer's token endpoint. */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  audience: string;
  /** Space-separated scopes to ask for; without it the issuer grants the client's default scopes. */
  scope?: string;
}

/**
 * Client-credentials tokens for calling another service, fetched once and renewed when less than a
 * fifth of their lifetime is left. (In Kubernetes, read the projected token file instead.)
 */
export function createTokenSource(options: TokenSourceOptions): () => Promise<string> {
  let current: { token: string; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const fetchToken = async () => {
    const response = await fetch(options.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: options.clientId,
        client_secret: options.clientSecret,
        audience: options.audience,
        ...(options.scope ? { scope: options.scope } : {}),
      }),
      signal: AbortSignal.timeout(5000),
    });
    if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
    const body = (await response.json()) as { access_token: string; expires_in: number };
    current = { token: body.access_token, renewAt: Date.now() + body.expires_in * 800 };
    return body.access_token;
  };
  return async () => {
    if (current && Date.now() < current.renewAt) return current.token;
    pending ??= fetchToken().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

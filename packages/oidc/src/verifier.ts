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
  /** Verified tokens kept (until they expire, or their key leaves the JWKS) so a busy caller's token is checked once. */
  cacheSize?: number;
  /**
   * How long the issuer's key set is used before it is fetched again (ms): a key the issuer stops
   * publishing is refused, cached tokens signed with it too, within about this long. 5 minutes.
   */
  jwksMaxAgeMs?: number;
  /**
   * Signature algorithms to accept instead of the ones the issuer publishes. Only asymmetric ones
   * (ACCEPTED_ALGORITHMS) are ever used: never `none`, never an HMAC.
   */
  algorithms?: string[];
}

export interface Verifier {
  /** Verifies `authorization` header value or bare token; resolves to the claims or throws AuthError. */
  verify(token: string | undefined): Promise<JWTPayload>;
}

/**
 * The signature algorithms a verifier may accept: asymmetric only. `none` would accept an unsigned
 * token, and an HMAC one a token "signed" with the public key as a shared secret.
 */
export const ACCEPTED_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** What is accepted from an issuer that publishes no algorithm (neither discovery nor its keys). */
const DEFAULT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

type KeySet = ReturnType<typeof createRemoteJWKSet>;
interface Issuer {
  keys: KeySet;
  algorithms: string[];
}

/** A verified token: its claims and the id of the key that signed it. */
interface Verified {
  claims: JWTPayload;
  kid: string;
}

/**
 * Verifies bearer tokens against an OIDC issuer: follows its discovery document to the JWKS (jose
 * fetches and caches the keys, refetching on an unknown key id), then checks the algorithm (one
 * the issuer publishes, asymmetric), signature, issuer, audience and expiry. The discovery document
 * is fetched on first use, so a service can start before its issuer; a failed fetch is retried on
 * the next call.
 *
 * A verified token is cached until it expires, with the id of its signing key: a cached token is
 * accepted only while that key is still in the issuer's key set. The key set is refetched in the
 * background once it is older than jwksMaxAgeMs, so a call never waits for the issuer, and a key
 * the issuer rotated out stops being accepted one fetch later.
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = options.issuer.replace(/\/$/, "");
  const maxAge = options.jwksMaxAgeMs ?? 300_000;
  let discovered: Promise<Issuer> | undefined;
  const issuerKeys = () => {
    discovered ??= discover(issuer, maxAge, options.algorithms).catch((error: unknown) => {
      discovered = undefined;
      throw error;
    });
    return discovered;
  };
  const cacheSize = options.cacheSize ?? 10_000;
  // token → verified; a Map keeps insertion order, so the oldest entry is evicted first.
  const cache = new Map<string, Verified>();
  const tolerance = options.clockToleranceSeconds ?? 5;

  // The key ids of the key set as last fetched; undefined: to be read again from jose's copy.
  let kids: Set<string> | undefined;
  let refreshing = false;
  let lastFailure = 0;
  const publishedKids = (keys: KeySet): Set<string> => {
    kids ??= new Set((keys.jwks()?.keys ?? []).flatMap((key) => (key.kid ? [key.kid] : [])));
    return kids;
  };
  /** Refetches a key set past its age without making the caller wait; after a failure, not for 5 s. */
  const refreshInBackground = (keys: KeySet) => {
    if (keys.fresh || refreshing || Date.now() - lastFailure < 5000) return;
    refreshing = true;
    keys
      .reload()
      .then(
        () => {
          kids = undefined;
        },
        // The issuer is unreachable: its last key set stands, as it does for jose.
        () => {
          lastFailure = Date.now();
        },
      )
      .finally(() => {
        refreshing = false;
      });
  };

  return {
    async verify(header) {
      const token = header?.startsWith("Bearer ") ? header.slice(7).trim() : header?.trim();
      if (!token) throw new AuthError("missing bearer token");
      const cached = cache.get(token);
      if (cached) {
        const { keys } = await issuerKeys();
        refreshInBackground(keys);
        const current = (cached.claims.exp ?? 0) + tolerance > Date.now() / 1000;
        if (current && publishedKids(keys).has(cached.kid)) return cached.claims;
        // Expired, or its key was rotated out: verified again, which refuses it with the reason.
        cache.delete(token);
      }
      try {
        const { keys, algorithms } = await issuerKeys();
        const { payload, protectedHeader } = await jwtVerify(token, keys, {
          issuer: [issuer, `${issuer}/`],
          audience: options.audience,
          algorithms,
          clockTolerance: tolerance,
          requiredClaims: ["exp", "sub"],
        });
        // jose may have refetched the key set for this token: read its key ids again when needed.
        kids = undefined;
        // A token without a key id is checked every time: its key cannot be followed in the set.
        if (protectedHeader.kid) {
          if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
          cache.set(token, { claims: payload, kid: protectedHeader.kid });
        }
        return payload;
      } catch (error) {
        if (error instanceof errors.JOSEError) throw new AuthError(`${error.code}: ${error.message}`);
        throw error;
      }
    },
  };
}

/**
 * The issuer's key set and the algorithms to accept: those it publishes in discovery
 * (`id_token_signing_alg_values_supported`), else those of its keys (`alg`), else the RSA and EC
 * families, each time only the asymmetric ones. An issuer that publishes only others is refused.
 */
async function discover(issuer: string, maxAgeMs: number, override?: string[]): Promise<Issuer> {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`OIDC discovery at ${issuer} answered ${response.status}`);
  const document = (await response.json()) as {
    issuer?: string;
    jwks_uri?: string;
    id_token_signing_alg_values_supported?: unknown;
  };
  if (document.issuer?.replace(/\/$/, "") !== issuer)
    throw new Error(`OIDC discovery at ${issuer} names another issuer: ${document.issuer}`);
  if (!document.jwks_uri) throw new Error(`OIDC discovery at ${issuer} has no jwks_uri`);
  const keys = createRemoteJWKSet(new URL(document.jwks_uri), { cacheMaxAge: maxAgeMs });
  let published = strings(override ?? document.id_token_signing_alg_values_supported);
  if (published.length === 0) {
    await keys.reload();
    published = strings(keys.jwks()?.keys.map((key) => key.alg));
  }
  const algorithms =
    published.length === 0
      ? DEFAULT_ALGORITHMS
      : published.filter((alg) => ACCEPTED_ALGORITHMS.includes(alg));
  if (algorithms.length === 0)
    throw new Error(
      `OIDC issuer ${issuer} signs with ${published.join(", ")} only; accepted: ${ACCEPTED_ALGORITHMS.join(", ")}`,
    );
  return { keys, algorithms };
}

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];

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

import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createRemoteJWKSet, customFetch, errors, type JWTPayload, jwtVerify } from "jose";

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
  /**
   * The issuer's key set, fetched directly instead of through discovery: for an issuer whose
   * discovery document this service cannot reach (a cluster's API server under an RBAC that hides
   * it). Algorithms then come from the keys (or `algorithms`).
   */
  jwksUrl?: string;
  /**
   * PEM file of the certificate authorities to trust for discovery and the key set, in place of
   * Node's store: the cluster's CA for `https://kubernetes.default.svc`. Read at each fetch, so a
   * rotated bundle is followed.
   */
  caFile?: string;
  /**
   * A bearer token sent with discovery and key-set requests, read at each fetch (the kubelet rotates
   * it): the pod's own service-account token, where the API server answers discovery only to an
   * authenticated caller (the default RBAC's `system:service-account-issuer-discovery`).
   */
  tokenFile?: string;
}

/** How the verifier fetches discovery and keys: Node's fetch, or one with a CA and a token. */
type Fetch = (url: string, init: { headers?: Headers; signal?: AbortSignal }) => Promise<Response>;

/**
 * A fetch for discovery and key sets that trusts `caFile` and sends `tokenFile`'s token, when
 * either is set (Node's fetch takes no CA of its own without undici's Agent; node:https does).
 * Redirects are not followed: an issuer's keys are where it says they are.
 */
export function issuerFetch(options: { caFile?: string; tokenFile?: string }): Fetch {
  if (!options.caFile && !options.tokenFile) return (url, init) => fetch(url, init);
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      const headers: Record<string, string> = { accept: "application/json" };
      init.headers?.forEach((value, name) => {
        headers[name] = value;
      });
      if (options.tokenFile)
        headers.authorization = `Bearer ${readFileSync(options.tokenFile, "utf8").trim()}`;
      const send = target.protocol === "https:" ? httpsRequest : httpRequest;
      const req = send(
        target,
        {
          method: "GET",
          headers,
          ...(options.caFile && target.protocol === "https:"
            ? { ca: readFileSync(options.caFile, "utf8") }
            : {}),
          ...(init.signal ? { signal: init.signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve(
              new Response(Buffer.concat(chunks), {
                status: res.statusCode ?? 502,
                headers: { "content-type": String(res.headers["content-type"] ?? "application/json") },
              }),
            ),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
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
  const get = issuerFetch(options);
  const issuerKeys = () => {
    discovered ??= discover(issuer, maxAge, get, options.algorithms, options.jwksUrl).catch(
      (error: unknown) => {
        discovered = undefined;
        throw error;
      },
    );
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
async function discover(
  issuer: string,
  maxAgeMs: number,
  get: Fetch,
  override?: string[],
  jwksUrl?: string,
): Promise<Issuer> {
  let document: { issuer?: string; jwks_uri?: string; id_token_signing_alg_values_supported?: unknown } = {
    issuer,
    ...(jwksUrl ? { jwks_uri: jwksUrl } : {}),
  };
  if (!jwksUrl) {
    const url = `${issuer}/.well-known/openid-configuration`;
    const response = await get(url, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`OIDC discovery at ${issuer} answered ${response.status}`);
    document = (await response.json()) as typeof document;
  }
  if (document.issuer?.replace(/\/$/, "") !== issuer)
    throw new Error(`OIDC discovery at ${issuer} names another issuer: ${document.issuer}`);
  if (!document.jwks_uri) throw new Error(`OIDC discovery at ${issuer} has no jwks_uri`);
  const keys = createRemoteJWKSet(new URL(document.jwks_uri), {
    cacheMaxAge: maxAgeMs,
    [customFetch]: get,
  });
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

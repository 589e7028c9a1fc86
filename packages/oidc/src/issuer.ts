import { randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

export interface IssuerOptions {
  /**
   * OAuth clients allowed to use the client-credentials grant: client id → secret, or → secret and
   * the scopes the client may be granted (e.g. `limiter.admin`).
   */
  clients?: Record<string, string | IssuerClient> | ((clientId: string) => string | IssuerClient | undefined);
  /** Lifetime of issued tokens (seconds); 300 by default, like a short projected token. */
  tokenTtlSeconds?: number;
  host?: string;
  port?: number;
}

export interface IssuerClient {
  secret: string;
  /** Scopes this client may hold; a token request without `scope` gets all of them. */
  scopes?: string[];
}

export interface TokenClaims {
  sub: string;
  aud: string | string[];
  /** Seconds from now; negative gives an already expired token (tests). */
  expiresInSeconds?: number;
  /** Override the issuer claim (tests of a wrong issuer). */
  iss?: string;
  extra?: Record<string, unknown>;
}

export interface LocalIssuer {
  /** The issuer identifier: the base URL that serves /.well-known/openid-configuration. */
  url: string;
  /** Signs a token with the issuer's current key, for in-process callers and tests. */
  sign(claims: TokenClaims): Promise<string>;
  /**
   * Signs with a new key from now on and publishes it; the old key stays in the JWKS only with
   * `keepPrevious` (a rotation's overlap), else it is withdrawn at once (a compromised key).
   */
  rotateKey(options?: { keepPrevious?: boolean }): Promise<void>;
  close(): Promise<void>;
}

const alg = "RS256";

/**
 * A small OpenID Connect issuer for local runs and tests: a discovery document, a JWKS with a key
 * generated at start, and a token endpoint for the client-credentials grant. In Kubernetes the
 * API server's service-account issuer plays this role (projected tokens); verifiers do not care
 * which one signed, they only follow the discovery document.
 */
export async function startLocalIssuer(options: IssuerOptions = {}): Promise<LocalIssuer> {
  let current = await newKey();
  const jwks: { keys: JWK[] } = { keys: [current.jwk] };
  const ttl = options.tokenTtlSeconds ?? 300;
  const clients = options.clients ?? {};
  let url = "";

  const sign = (claims: TokenClaims) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ ...claims.extra })
      .setProtectedHeader({ alg, kid: current.jwk.kid, typ: "JWT" })
      .setIssuer(claims.iss ?? url)
      .setSubject(claims.sub)
      .setAudience(claims.aud)
      .setIssuedAt(now)
      .setJti(randomUUID())
      .setExpirationTime(now + (claims.expiresInSeconds ?? ttl))
      .sign(current.privateKey);
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      json(response, 500, { error: "server_error", error_description: String(error) });
    });
  });
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    if (request.method === "GET" && path === "/.well-known/openid-configuration") {
      return json(response, 200, {
        issuer: url,
        jwks_uri: `${url}/jwks`,
        token_endpoint: `${url}/token`,
        grant_types_supported: ["client_credentials"],
        token_endpoint_auth_methods_supported: ["client_secret_post", "client_secret_basic"],
        id_token_signing_alg_values_supported: [alg],
        response_types_supported: ["token"],
        subject_types_supported: ["public"],
      });
    }
    if (request.method === "GET" && path === "/jwks") return json(response, 200, jwks);
    if (request.method === "POST" && path === "/token") {
      const form = new URLSearchParams(await readBody(request));
      let clientId = form.get("client_id") ?? "";
      let secret = form.get("client_secret") ?? "";
      const basic = request.headers.authorization?.match(/^Basic (.+)$/i)?.[1];
      if (basic) {
        const decoded = Buffer.from(basic, "base64").toString();
        const colon = decoded.indexOf(":");
        clientId = decodeURIComponent(decoded.slice(0, colon));
        secret = decodeURIComponent(decoded.slice(colon + 1));
      }
      if (form.get("grant_type") !== "client_credentials")
        return json(response, 400, { error: "unsupported_grant_type" });
      const entry =
        typeof clients === "function"
          ? clients(clientId)
          : Object.hasOwn(clients, clientId)
            ? clients[clientId]
            : undefined;
      const client = typeof entry === "string" ? { secret: entry } : entry;
      if (client === undefined || !sameSecret(client.secret, secret))
        return json(response, 401, { error: "invalid_client" });
      const audience = form.get("audience");
      if (!audience) return json(response, 400, { error: "invalid_request", error_description: "audience" });
      // RFC 6749 §3.3: a requested scope narrows what the client holds; one it does not hold is refused.
      const allowed = client.scopes ?? [];
      const requested = form.get("scope")?.split(" ").filter(Boolean);
      const refused = requested?.filter((scope) => !allowed.includes(scope)) ?? [];
      if (refused.length > 0)
        return json(response, 400, { error: "invalid_scope", error_description: refused.join(" ") });
      const scope = (requested ?? allowed).join(" ");
      const token = await sign({ sub: clientId, aud: audience, extra: scope ? { scope } : undefined });
      return json(response, 200, {
        access_token: token,
        token_type: "Bearer",
        expires_in: ttl,
        ...(scope ? { scope } : {}),
      });
    }
    json(response, 404, { error: "not_found" });
  };

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  url = `http://${host}:${(server.address() as AddressInfo).port}`;
  return {
    url,
    sign,
    async rotateKey(rotation = {}) {
      const previous = current;
      current = await newKey();
      jwks.keys = rotation.keepPrevious ? [current.jwk, previous.jwk] : [current.jwk];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A signing key pair and its public JWK as published (key id: its RFC 7638 thumbprint). */
async function newKey(): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateKey, jwk: { ...publicJwk, kid, alg, use: "sig" } };
}

function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function json(response: ServerResponse, code: number, body: unknown): void {
  response.writeHead(code, { "content-type": "application/json", "cache-control": "no-store" });
  response.end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage): Promise<string> {
  let body = "";
  for await (const chunk of request) {
    body += chunk;
    if (body.length > 64 * 1024) throw new Error("request body too large");
  }
  return body;
}

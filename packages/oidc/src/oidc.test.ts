import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type JWK, SignJWT } from "jose";
import { AuthError, createTokenSource, createVerifier, type LocalIssuer, startLocalIssuer } from "./index.ts";

let issuer: LocalIssuer;
let stranger: LocalIssuer;

before(async () => {
  issuer = await startLocalIssuer({
    clients: { generation: "s3cret", ops: { secret: "0ps", scopes: ["limiter.admin", "limiter.read"] } },
  });
  stranger = await startLocalIssuer();
});
after(async () => {
  await issuer.close();
  await stranger.close();
});

const rejects = (promise: Promise<unknown>, pattern: RegExp) =>
  assert.rejects(promise, (error: unknown) => error instanceof AuthError && pattern.test(error.message));

describe("verifier", () => {
  test("accepts a valid token and returns its claims", async () => {
    const verifier = createVerifier({ issuer: issuer.url, audience: "limiter" });
    const claims = await verifier.verify(`Bearer ${await issuer.sign({ sub: "gen", aud: "limiter" })}`);
    assert.equal(claims.sub, "gen");
  });

  test("rejects missing, expired, wrong-audience, wrong-issuer, tampered and unknown-key tokens", async () => {
    const verifier = createVerifier({ issuer: issuer.url, audience: "limiter", clockToleranceSeconds: 0 });
    await rejects(verifier.verify(undefined), /missing/);
    await rejects(verifier.verify("Bearer "), /missing/);
    await rejects(verifier.verify("Bearer not-a-jwt"), /ERR_JW[ST]_INVALID/);
    await rejects(
      verifier.verify(await issuer.sign({ sub: "gen", aud: "limiter", expiresInSeconds: -10 })),
      /ERR_JWT_EXPIRED/,
    );
    await rejects(verifier.verify(await issuer.sign({ sub: "gen", aud: "payment" })), /aud/);
    await rejects(
      verifier.verify(await issuer.sign({ sub: "gen", aud: "limiter", iss: "http://elsewhere" })),
      /iss/,
    );
    const valid = await issuer.sign({ sub: "gen", aud: "limiter" });
    const [head, body, signature = ""] = valid.split(".");
    const flipped = `${signature.slice(0, 10)}${signature[10] === "A" ? "B" : "A"}${signature.slice(11)}`;
    await rejects(verifier.verify(`${head}.${body}.${flipped}`), /SIGNATURE/);
    await rejects(
      verifier.verify(await stranger.sign({ sub: "gen", aud: "limiter", iss: issuer.url })),
      /NO_MATCHING_KEY/,
    );
  });
});

/**
 * An issuer whose discovery document says what `algs` says (nothing when undefined) and whose one
 * RSA key is published without `alg`, so that only the verifier's algorithm list tells RS256 from
 * PS256 with the same key.
 */
async function startBareIssuer(algs: string[] | undefined) {
  // A Node key, not a WebCrypto one: it signs with any RSA algorithm.
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk: JWK = { ...publicKey.export({ format: "jwk" }), kid: "k1", use: "sig" };
  const server = createServer((request, response) => {
    response.setHeader("content-type", "application/json");
    if (request.url === "/jwks") return response.end(JSON.stringify({ keys: [jwk] }));
    response.end(
      JSON.stringify({
        issuer: url,
        jwks_uri: `${url}/jwks`,
        ...(algs ? { id_token_signing_alg_values_supported: algs } : {}),
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sign = (alg: string, key: KeyObject | Uint8Array = privateKey) =>
    new SignJWT({})
      .setProtectedHeader({ alg, kid: "k1" })
      .setIssuer(url)
      .setSubject("gen")
      .setAudience("limiter")
      .setExpirationTime("5m")
      .sign(key);
  return {
    url,
    sign,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("verifier: algorithms", () => {
  test("only the algorithms the issuer publishes are accepted, never an HMAC or none", async () => {
    const bare = await startBareIssuer(["RS256", "HS256", "none"]);
    try {
      const verifier = createVerifier({ issuer: bare.url, audience: "limiter" });
      assert.equal((await verifier.verify(await bare.sign("RS256"))).sub, "gen");
      // The same RSA key, another algorithm the issuer does not publish: refused.
      await rejects(verifier.verify(await bare.sign("PS256")), /ERR_JOSE_ALG_NOT_ALLOWED/);
      // Published, but symmetric: a token "signed" with a shared secret is never accepted.
      await rejects(
        verifier.verify(await bare.sign("HS256", new Uint8Array(32))),
        /ERR_JOSE_ALG_NOT_ALLOWED/,
      );
      const [head, body] = (await bare.sign("RS256")).split(".");
      const unsigned = `${Buffer.from(JSON.stringify({ alg: "none", kid: "k1" })).toString("base64url")}.${body}.`;
      assert.ok(head);
      await rejects(verifier.verify(unsigned), /ERR_JOSE_ALG_NOT_ALLOWED|ERR_JWS_INVALID/);
    } finally {
      await bare.close();
    }
  });

  test("an issuer that publishes no algorithm gets the RSA and EC families; one publishing only HMACs is refused", async () => {
    const silent = await startBareIssuer(undefined);
    const hmacOnly = await startBareIssuer(["HS256"]);
    try {
      const verifier = createVerifier({ issuer: silent.url, audience: "limiter" });
      assert.equal((await verifier.verify(await silent.sign("PS256"))).sub, "gen");
      await rejects(
        verifier.verify(await silent.sign("HS256", new Uint8Array(32))),
        /ERR_JOSE_ALG_NOT_ALLOWED/,
      );
      await assert.rejects(
        createVerifier({ issuer: hmacOnly.url, audience: "limiter" }).verify(await hmacOnly.sign("RS256")),
        /signs with HS256 only/,
      );
    } finally {
      await silent.close();
      await hmacOnly.close();
    }
  });
});

describe("verifier: key rotation", () => {
  test("a cached token is refused once its key has left the issuer's key set", async () => {
    const rotating = await startLocalIssuer();
    try {
      const verifier = createVerifier({ issuer: rotating.url, audience: "limiter", jwksMaxAgeMs: 50 });
      const old = await rotating.sign({ sub: "gen", aud: "limiter" });
      assert.equal((await verifier.verify(old)).sub, "gen");
      // Rotated with an overlap: the old key is still published, its tokens still pass.
      await rotating.rotateKey({ keepPrevious: true });
      await sleep(100);
      for (let i = 0; i < 5; i++) {
        assert.equal((await verifier.verify(old)).sub, "gen");
        await sleep(20);
      }
      const fresh = await rotating.sign({ sub: "gen", aud: "limiter" });
      assert.equal((await verifier.verify(fresh)).sub, "gen");
      // Withdrawn: the cached token is refused within a key-set refresh, the new key's still pass.
      await rotating.rotateKey();
      await sleep(100);
      let refused: unknown;
      for (let i = 0; i < 50 && !refused; i++) {
        refused = await verifier.verify(old).then(
          () => undefined,
          (error: unknown) => error,
        );
        if (!refused) await sleep(20);
      }
      assert.ok(refused instanceof AuthError, "the rotated-out key's token is refused");
      assert.match(refused.message, /NO_MATCHING_KEY/);
      const newest = await rotating.sign({ sub: "gen", aud: "limiter" });
      assert.equal((await verifier.verify(newest)).sub, "gen");
    } finally {
      await rotating.close();
    }
  });
});

describe("token endpoint", () => {
  test("issues client-credentials tokens that the verifier accepts, and refuses a bad secret", async () => {
    const tokenUrl = `${issuer.url}/token`;
    const token = await createTokenSource({
      tokenUrl,
      clientId: "generation",
      clientSecret: "s3cret",
      audience: "limiter",
    })();
    const claims = await createVerifier({ issuer: issuer.url, audience: "limiter" }).verify(token);
    assert.equal(claims.sub, "generation");
    const bad = createTokenSource({ tokenUrl, clientId: "generation", clientSecret: "nope", audience: "x" });
    await assert.rejects(bad(), /401/);
  });
});

describe("token endpoint scopes", () => {
  const verifier = () => createVerifier({ issuer: issuer.url, audience: "limiter" });
  const source = (clientId: string, clientSecret: string, scope?: string) =>
    createTokenSource({
      tokenUrl: `${issuer.url}/token`,
      clientId,
      clientSecret,
      audience: "limiter",
      scope,
    });

  test("a client gets its scopes by default, a requested subset when it asks, and no scope claim without any", async () => {
    assert.equal((await verifier().verify(await source("ops", "0ps")())).scope, "limiter.admin limiter.read");
    assert.equal(
      (await verifier().verify(await source("ops", "0ps", "limiter.read")())).scope,
      "limiter.read",
    );
    assert.equal((await verifier().verify(await source("generation", "s3cret")())).scope, undefined);
  });

  test("a scope the client does not hold is refused with invalid_scope", async () => {
    await assert.rejects(source("generation", "s3cret", "limiter.admin")(), /400/);
    const response = await fetch(`${issuer.url}/token`, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: "ops",
        client_secret: "0ps",
        audience: "limiter",
        scope: "limiter.admin root",
      }),
    });
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), { error: "invalid_scope", error_description: "root" });
  });
});

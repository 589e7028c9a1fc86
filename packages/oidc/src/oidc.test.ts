import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
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

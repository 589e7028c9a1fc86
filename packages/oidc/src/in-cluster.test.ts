import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { exportJWK, SignJWT } from "jose";
import { AuthError, createVerifier } from "./index.ts";

/**
 * An issuer as a cluster's API server serves its service-account issuer: HTTPS with a certificate
 * from the cluster's own CA (not in Node's store), discovery and keys only to a caller with a
 * bearer token (the default RBAC's system:service-account-issuer-discovery), and the issuer URL in
 * the tokens it signs.
 */
const dir = mkdtempSync(join(tmpdir(), "taituri-oidc-cluster-"));
const caFile = join(dir, "ca.crt");
const tokenFile = join(dir, "token");
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
let server: Server;
let issuer = "";
const seen: (string | undefined)[] = [];

before(async () => {
  // A self-signed certificate for 127.0.0.1: the "cluster CA" only this test trusts.
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      join(dir, "tls.key"),
      "-out",
      caFile,
    ],
    { stdio: "ignore" },
  );
  writeFileSync(tokenFile, "pod-service-account-token\n");
  const jwk = { ...(await exportJWK(publicKey)), kid: "cluster-1", alg: "ES256", use: "sig" };
  server = createServer(
    { key: readFileSync(join(dir, "tls.key")), cert: readFileSync(caFile) },
    (req, res) => {
      seen.push(req.headers.authorization);
      if (req.headers.authorization !== "Bearer pod-service-account-token") {
        res.writeHead(401).end();
        return;
      }
      res.setHeader("content-type", "application/json");
      if (req.url === "/.well-known/openid-configuration")
        res.end(
          JSON.stringify({
            issuer,
            jwks_uri: `${issuer}/openid/v1/jwks`,
            id_token_signing_alg_values_supported: ["ES256"],
          }),
        );
      else if (req.url === "/openid/v1/jwks") res.end(JSON.stringify({ keys: [jwk] }));
      else res.writeHead(404).end();
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const token = () =>
  new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: "cluster-1" })
    .setIssuer(issuer)
    .setAudience("limiter")
    .setSubject("system:serviceaccount:shop:taituri-generation")
    .setExpirationTime("10m")
    .sign(privateKey);

describe("verifier: an issuer served as a cluster's API server serves it", () => {
  test("with the cluster CA and the pod's token, discovery and keys are reached and the token verifies", async () => {
    const verifier = createVerifier({ issuer, audience: "limiter", caFile, tokenFile });
    const claims = await verifier.verify(`Bearer ${await token()}`);
    assert.equal(claims.sub, "system:serviceaccount:shop:taituri-generation");
    assert.ok(seen.length >= 2 && seen.every((h) => h === "Bearer pod-service-account-token"));
  });

  test("without the CA the certificate is refused; without the token discovery is refused", async () => {
    await assert.rejects(
      createVerifier({ issuer, audience: "limiter", tokenFile }).verify(await token()),
      (error: Error) =>
        !(error instanceof AuthError) &&
        /certificate|self.signed/i.test(String(error.cause ?? error.message)),
    );
    await assert.rejects(
      createVerifier({ issuer, audience: "limiter", caFile }).verify(await token()),
      /discovery .* answered 401/,
    );
  });

  test("the JWKS URL given directly skips discovery", async () => {
    seen.length = 0;
    const verifier = createVerifier({
      issuer,
      audience: "limiter",
      caFile,
      tokenFile,
      jwksUrl: `${issuer}/openid/v1/jwks`,
    });
    assert.equal((await verifier.verify(await token())).aud, "limiter");
    assert.equal(seen.length, 1, "one request: the key set, no discovery");
  });

  test("the token file is read at each fetch: a rotated token is the one sent", async () => {
    writeFileSync(tokenFile, "rotated\n");
    await assert.rejects(
      createVerifier({ issuer, audience: "limiter", caFile, tokenFile }).verify(await token()),
      /401/,
    );
    writeFileSync(tokenFile, "pod-service-account-token\n");
  });
});

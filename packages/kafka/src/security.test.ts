import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createVerifier, type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { type KafkaSecuritySettings, kafkaSecurity } from "./security.ts";

const dir = mkdtempSync(join(tmpdir(), "kafka-security-unit-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const none: KafkaSecuritySettings = { KAFKA_SSL: false, KAFKA_SSL_REJECT_UNAUTHORIZED: true };

let issuer: LocalIssuer;
before(async () => {
  issuer = await startLocalIssuer({ clients: { taituri: "client-secret" } });
});
after(async () => {
  await issuer.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("kafkaSecurity", () => {
  test("nothing set: plaintext, no SASL", () => {
    assert.deepEqual(kafkaSecurity(none), {});
  });

  test("TLS with a CA and a client certificate: the files' contents, certificate checks on", () => {
    const security = kafkaSecurity({
      ...none,
      KAFKA_SSL: true,
      KAFKA_SSL_CA_FILE: file("ca.pem", "CA"),
      KAFKA_SSL_CERT_FILE: file("cert.pem", "CERT"),
      KAFKA_SSL_KEY_FILE: file("key.pem", "KEY"),
    });
    assert.deepEqual(security, { ssl: { rejectUnauthorized: true, ca: "CA", cert: "CERT", key: "KEY" } });
  });

  test("TLS alone trusts Node's CAs; checks off only when the setting says so", () => {
    assert.deepEqual(kafkaSecurity({ ...none, KAFKA_SSL: true }), { ssl: { rejectUnauthorized: true } });
    assert.deepEqual(kafkaSecurity({ ...none, KAFKA_SSL: true, KAFKA_SSL_REJECT_UNAUTHORIZED: false }), {
      ssl: { rejectUnauthorized: false },
    });
  });

  test("plain and scram take the user and the password, from the value or the file (trimmed)", () => {
    assert.deepEqual(
      kafkaSecurity({
        ...none,
        KAFKA_SASL_MECHANISM: "plain",
        KAFKA_SASL_USERNAME: "u",
        KAFKA_SASL_PASSWORD: "p",
      }).sasl,
      { mechanism: "plain", username: "u", password: "p" },
    );
    assert.deepEqual(
      kafkaSecurity({
        ...none,
        KAFKA_SASL_MECHANISM: "scram-sha-512",
        KAFKA_SASL_USERNAME: "u",
        KAFKA_SASL_PASSWORD_FILE: file("password", "from-file\n"),
      }).sasl,
      { mechanism: "scram-sha-512", username: "u", password: "from-file" },
    );
  });

  test("a missing password file fails at once, naming the file", () => {
    assert.throws(
      () =>
        kafkaSecurity({
          ...none,
          KAFKA_SASL_MECHANISM: "plain",
          KAFKA_SASL_USERNAME: "u",
          KAFKA_SASL_PASSWORD_FILE: join(dir, "absent"),
        }),
      /ENOENT.*absent/,
    );
  });

  test("oauthbearer with a token file: each new connection reads the file again", async () => {
    const path = file("token", "first\n");
    const security = kafkaSecurity({
      ...none,
      KAFKA_SASL_MECHANISM: "oauthbearer",
      KAFKA_OAUTH_TOKEN_FILE: path,
    });
    assert.ok(security.sasl?.mechanism === "oauthbearer");
    assert.deepEqual(await security.sasl.oauthBearerProvider(), { value: "first" });
    writeFileSync(path, "second");
    assert.deepEqual(await security.sasl.oauthBearerProvider(), { value: "second" });
  });

  test("oauthbearer with a client grant: a token the issuer signed for the audience", async () => {
    const security = kafkaSecurity({
      ...none,
      KAFKA_SASL_MECHANISM: "oauthbearer",
      KAFKA_OAUTH_TOKEN_URL: `${issuer.url}/token`,
      KAFKA_OAUTH_CLIENT_ID: "taituri",
      KAFKA_OAUTH_CLIENT_SECRET_FILE: file("client-secret", "client-secret\n"),
      KAFKA_OAUTH_AUDIENCE: "kafka",
    });
    assert.ok(security.sasl?.mechanism === "oauthbearer");
    const { value } = await security.sasl.oauthBearerProvider();
    const claims = await createVerifier({ issuer: issuer.url, audience: "kafka" }).verify(value);
    assert.equal(claims.sub, "taituri");
  });
});

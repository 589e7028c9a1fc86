import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { baseSchema, ConfigError, loadConfig } from "./index.ts";

const dir = mkdtempSync(join(tmpdir(), "config-connections-"));
const secretFile = join(dir, "secret");
writeFileSync(secretFile, "s3cret\n");
after(() => rmSync(dir, { recursive: true, force: true }));

/** The problems loadConfig reports for this environment, or [] when it loads. */
const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig(baseSchema, env);
    return [];
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
};

describe("Kafka connection settings", () => {
  test("defaults: no TLS, no SASL, certificate checks on", () => {
    const config = loadConfig(baseSchema, {});
    assert.equal(config.KAFKA_SSL, false);
    assert.equal(config.KAFKA_SSL_REJECT_UNAUTHORIZED, true);
    assert.equal(config.KAFKA_SASL_MECHANISM, undefined);
  });

  test("a mechanism with its credentials loads", () => {
    for (const mechanism of ["plain", "scram-sha-256", "scram-sha-512"]) {
      assert.deepEqual(
        problems({ KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p" }),
        [],
      );
    }
    assert.deepEqual(
      problems({
        KAFKA_SASL_MECHANISM: "scram-sha-512",
        KAFKA_SASL_USERNAME: "u",
        KAFKA_SASL_PASSWORD_FILE: secretFile,
      }),
      [],
    );
    assert.deepEqual(
      problems({ KAFKA_SASL_MECHANISM: "oauthbearer", KAFKA_OAUTH_TOKEN_FILE: secretFile }),
      [],
    );
    assert.deepEqual(
      problems({
        KAFKA_SASL_MECHANISM: "oauthbearer",
        KAFKA_OAUTH_TOKEN_URL: "https://issuer.example/token",
        KAFKA_OAUTH_CLIENT_ID: "taituri",
        KAFKA_OAUTH_CLIENT_SECRET: "s",
        KAFKA_OAUTH_AUDIENCE: "kafka",
      }),
      [],
    );
  });

  test("a mechanism without its credentials names each missing variable", () => {
    assert.deepEqual(problems({ KAFKA_SASL_MECHANISM: "scram-sha-256" }), [
      "KAFKA_SASL_USERNAME is required by KAFKA_SASL_MECHANISM=scram-sha-256",
      "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE is required by KAFKA_SASL_MECHANISM=scram-sha-256",
    ]);
    assert.deepEqual(problems({ KAFKA_SASL_MECHANISM: "oauthbearer" }), [
      "KAFKA_OAUTH_TOKEN_FILE or KAFKA_OAUTH_TOKEN_URL (with its client) is required by KAFKA_SASL_MECHANISM=oauthbearer",
    ]);
    assert.deepEqual(
      problems({
        KAFKA_SASL_MECHANISM: "oauthbearer",
        KAFKA_OAUTH_TOKEN_URL: "https://issuer.example/token",
      }),
      [
        "KAFKA_OAUTH_CLIENT_ID is required by the client grant of KAFKA_OAUTH_TOKEN_URL",
        "KAFKA_OAUTH_AUDIENCE is required by the client grant of KAFKA_OAUTH_TOKEN_URL",
        "KAFKA_OAUTH_CLIENT_SECRET or KAFKA_OAUTH_CLIENT_SECRET_FILE is required by the client grant of KAFKA_OAUTH_TOKEN_URL",
      ],
    );
  });

  test("credentials without a mechanism, or for another mechanism, are refused", () => {
    assert.deepEqual(problems({ KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p" }), [
      "KAFKA_SASL_USERNAME is set but KAFKA_SASL_MECHANISM is not: set the mechanism, or unset KAFKA_SASL_USERNAME",
      "KAFKA_SASL_PASSWORD is set but KAFKA_SASL_MECHANISM is not: set the mechanism, or unset KAFKA_SASL_PASSWORD",
    ]);
    assert.deepEqual(
      problems({
        KAFKA_SASL_MECHANISM: "plain",
        KAFKA_SASL_USERNAME: "u",
        KAFKA_SASL_PASSWORD: "p",
        KAFKA_OAUTH_TOKEN_FILE: secretFile,
      }),
      ["KAFKA_OAUTH_TOKEN_FILE is for KAFKA_SASL_MECHANISM=oauthbearer, not plain"],
    );
    assert.deepEqual(
      problems({
        KAFKA_SASL_MECHANISM: "oauthbearer",
        KAFKA_OAUTH_TOKEN_FILE: secretFile,
        KAFKA_OAUTH_CLIENT_ID: "taituri",
      }),
      ["KAFKA_OAUTH_CLIENT_ID: set KAFKA_OAUTH_TOKEN_FILE or a client grant, not both"],
    );
  });

  test("a value and its file exclude each other", () => {
    assert.deepEqual(
      problems({
        KAFKA_SASL_MECHANISM: "plain",
        KAFKA_SASL_USERNAME: "u",
        KAFKA_SASL_PASSWORD: "p",
        KAFKA_SASL_PASSWORD_FILE: secretFile,
      }),
      ["KAFKA_SASL_PASSWORD: set it or KAFKA_SASL_PASSWORD_FILE, not both"],
    );
  });

  test("TLS files need KAFKA_SSL, a certificate needs its key, and every file must be readable", () => {
    assert.deepEqual(problems({ KAFKA_SSL_CA_FILE: secretFile }), [
      "KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true",
    ]);
    assert.deepEqual(problems({ KAFKA_SSL: "true", KAFKA_SSL_CERT_FILE: secretFile }), [
      "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS): set both or neither",
    ]);
    const absent = join(dir, "absent.pem");
    assert.deepEqual(problems({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: absent }), [
      `KAFKA_SSL_CA_FILE: ${absent} does not exist`,
    ]);
    assert.deepEqual(problems({ KAFKA_SSL: "true", KAFKA_SSL_CA_FILE: dir }), [
      `KAFKA_SSL_CA_FILE: ${dir} is not a file`,
    ]);
  });

  test("certificate checks off: allowed in local, refused elsewhere", () => {
    assert.deepEqual(problems({ KAFKA_SSL: "true", KAFKA_SSL_REJECT_UNAUTHORIZED: "false" }), []);
    const elsewhere = problems({
      DEPLOYMENT_ENVIRONMENT: "production",
      PSEUDONYM_KEY: "a-production-pseudonym-key-of-32-bytes-or-more",
      KAFKA_ALLOW_UNAUTHENTICATED: "true",
      KAFKA_SSL: "true",
      KAFKA_SSL_REJECT_UNAUTHORIZED: "false",
    });
    assert.equal(elsewhere.length, 1, elsewhere.join("\n"));
    assert.match(elsewhere[0] ?? "", /^KAFKA_SSL_REJECT_UNAUTHORIZED: certificate checks off; .*production/);
  });
});

describe("Redis connection settings", () => {
  test("a password, from a value or a file, with or without a user, loads", () => {
    assert.deepEqual(problems({ REDIS_PASSWORD: "p" }), []);
    assert.deepEqual(problems({ REDIS_USERNAME: "taituri", REDIS_PASSWORD_FILE: secretFile }), []);
    assert.deepEqual(problems({ REDIS_TLS: "true", REDIS_TLS_CA_FILE: secretFile }), []);
    assert.deepEqual(
      problems({ REDIS_URL: "rediss://redis.example:6380", REDIS_TLS_CA_FILE: secretFile }),
      [],
    );
  });

  test("a user without a password, both a password and its file, a CA without TLS are refused", () => {
    assert.deepEqual(problems({ REDIS_USERNAME: "taituri" }), [
      "REDIS_PASSWORD or REDIS_PASSWORD_FILE is required by REDIS_USERNAME",
    ]);
    assert.deepEqual(problems({ REDIS_PASSWORD: "p", REDIS_PASSWORD_FILE: secretFile }), [
      "REDIS_PASSWORD: set it or REDIS_PASSWORD_FILE, not both",
    ]);
    assert.deepEqual(problems({ REDIS_TLS_CA_FILE: secretFile }), [
      "REDIS_TLS_CA_FILE is set but neither REDIS_TLS nor a rediss:// REDIS_URL asks for TLS",
    ]);
  });
});

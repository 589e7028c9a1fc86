import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isLoopbackUrl, MIN_SECRET_BYTES } from "./development-defaults.ts";
import {
  baseSchema,
  csv,
  devClockUrl,
  loadConfig,
  port,
  configProblems as problems,
  refuseOutsideLocal,
  z,
} from "./index.ts";

const schema = baseSchema
  .extend({
    PORT: port(3000),
    KEY: refuseOutsideLocal(z.string().min(8).default("public-key-value"), { secret: ["public-key-value"] }),
    KEYS: refuseOutsideLocal(csv().pipe(z.array(z.string()).min(1)), { secret: ["npm-start-key"] }),
    PROVIDER: refuseOutsideLocal(z.enum(["local", "real"]).default("local"), {
      values: ["local"],
      is: "the local provider",
      instead: "set PROVIDER=real",
    }),
    PROVIDER_SECRET: refuseOutsideLocal(z.string().default("provider-dev"), {
      secret: ["provider-dev"],
      when: { PROVIDER: "local" },
    }),
    TOKEN: refuseOutsideLocal(z.string().optional(), {
      values: ["dev-token"],
      instead: "set your own token",
    }),
    ISSUER: refuseOutsideLocal(z.string().url().default("http://127.0.0.1:3010"), { loopbackIssuer: true }),
  })
  .superRefine(() => {});

const strong = "s".repeat(MIN_SECRET_BYTES);
const production = {
  DEPLOYMENT_ENVIRONMENT: "production",
  PSEUDONYM_KEY: strong,
  KEY: strong,
  KEYS: strong,
  PROVIDER: "real",
  ISSUER: "https://issuer.example",
  // baseSchema refuses Kafka without a login elsewhere than local: these tests are about the rest.
  KAFKA_ALLOW_UNAUTHENTICATED: "true",
};

describe("development defaults", () => {
  test("under local every development value works, defaults and public values alike", () => {
    const config = loadConfig(schema, { KEYS: "npm-start-key", TOKEN: "dev-token" });
    assert.equal(config.DEPLOYMENT_ENVIRONMENT, "local");
    assert.equal(config.KEY, "public-key-value");
    assert.equal(config.PROVIDER, "local");
    assert.equal(config.ISSUER, "http://127.0.0.1:3010");
  });

  test("elsewhere, every one in effect is named, with what to set, beside the other problems", () => {
    assert.deepEqual(
      problems(() =>
        loadConfig(schema, { DEPLOYMENT_ENVIRONMENT: "staging", KEYS: "npm-start-key", PORT: "eighty" }),
      ),
      [
        "PORT: Invalid input: expected number, received NaN",
        "KAFKA_SASL_MECHANISM: no login to Kafka, so anyone who reaches the brokers can write the paid requests; set KAFKA_SASL_MECHANISM (oauthbearer with KAFKA_OAUTH_TOKEN_FILE in Kubernetes), or KAFKA_ALLOW_UNAUTHENTICATED=true if nothing else can reach the brokers (DEPLOYMENT_ENVIRONMENT=staging)",
        "PSEUDONYM_KEY: the public development default; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=staging)",
        "KEY: the public development default; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=staging)",
        "KEYS: the public development default; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=staging)",
        "PROVIDER: the local provider; set PROVIDER=real (DEPLOYMENT_ENVIRONMENT=staging)",
        "PROVIDER_SECRET: the public development default; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=staging)",
        "ISSUER: a loopback issuer (a development one on this machine); set the issuer of your deployment's tokens (in Kubernetes, the API server's service-account issuer) (DEPLOYMENT_ENVIRONMENT=staging)",
      ],
    );
  });

  test("with none in effect the production settings load", () => {
    const config = loadConfig(schema, production);
    assert.equal(config.PROVIDER, "real");
    assert.deepEqual(config.KEYS, [strong]);
  });

  test("a public value set by hand is refused like the default it equals", () => {
    assert.deepEqual(
      problems(() => loadConfig(schema, { ...production, KEY: "public-key-value", TOKEN: "dev-token" })),
      [
        "KEY: the public development default; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=production)",
        "TOKEN: the public development default; set your own token (DEPLOYMENT_ENVIRONMENT=production)",
      ],
    );
  });

  test("a secret shorter than 32 bytes is refused, counted in UTF-8 bytes; one weak entry of a list is enough", () => {
    const short = "s".repeat(MIN_SECRET_BYTES - 1);
    assert.deepEqual(
      problems(() => loadConfig(schema, { ...production, KEY: short, KEYS: `${strong},${short}` })),
      [
        "KEY: shorter than 32 bytes; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=production)",
        "KEYS: shorter than 32 bytes; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=production)",
      ],
    );
    // 11 euro signs are 11 characters but 33 bytes.
    assert.equal(loadConfig(schema, { ...production, KEY: "€".repeat(11) }).KEY, "€".repeat(11));
  });

  test("a setting that only takes effect with another's value is checked only then", () => {
    assert.equal(loadConfig(schema, production).PROVIDER_SECRET, "provider-dev");
    const found = problems(() => loadConfig(schema, { ...production, PROVIDER: "local" }));
    assert.ok(
      found.some((p) => p.startsWith("PROVIDER_SECRET: the public development default")),
      found.join("\n"),
    );
  });

  test("a value its own schema refuses is reported once, by the schema", () => {
    assert.deepEqual(
      problems(() => loadConfig(schema, { ...production, KEY: "short" })),
      ["KEY: Too small: expected string to have >=8 characters"],
    );
  });

  test("a setting whose development value is unset: refused while unset, unless its `when` is off", () => {
    const kafka = { ...production, KAFKA_ALLOW_UNAUTHENTICATED: undefined };
    assert.deepEqual(
      problems(() => loadConfig(schema, kafka)).map((p) => p.split(":")[0]),
      ["KAFKA_SASL_MECHANISM"],
    );
    // A flag's value in effect is a boolean; `when` compares it as written ("false").
    assert.doesNotThrow(() => loadConfig(schema, { ...kafka, KAFKA_ALLOW_UNAUTHENTICATED: "yes" }));
    assert.doesNotThrow(() =>
      loadConfig(schema, {
        ...kafka,
        KAFKA_SASL_MECHANISM: "plain",
        KAFKA_SASL_USERNAME: "u",
        KAFKA_SASL_PASSWORD: "p",
      }),
    );
    assert.doesNotThrow(() => loadConfig(schema, { ...kafka, DEPLOYMENT_ENVIRONMENT: "local" }));
  });

  test("a development tool's setting (the development clock) is refused outside local whatever its value", () => {
    const clocked = baseSchema.extend({ DEV_CLOCK_URL: devClockUrl() });
    const base = { ...production, KEY: undefined, KEYS: undefined, PROVIDER: undefined, ISSUER: undefined };
    const url = "http://127.0.0.1:3900/sim/api/clock";
    assert.equal(loadConfig(clocked, { DEV_CLOCK_URL: url }).DEV_CLOCK_URL, url);
    assert.equal(loadConfig(clocked, base).DEV_CLOCK_URL, undefined);
    for (const value of [url, "https://clock.example.com/offset"])
      assert.deepEqual(
        problems(() => loadConfig(clocked, { ...base, DEV_CLOCK_URL: value })),
        [
          "DEV_CLOCK_URL: a development clock that anyone who reaches it can move; unset it (services keep the real time) (DEPLOYMENT_ENVIRONMENT=production)",
        ],
      );
  });

  test("a schema without DEPLOYMENT_ENVIRONMENT has nothing to refuse", () => {
    const cli = z.object({
      TOKEN: refuseOutsideLocal(z.string().default("dev-token"), { secret: ["dev-token"] }),
    });
    assert.equal(loadConfig(cli, { DEPLOYMENT_ENVIRONMENT: "production" }).TOKEN, "dev-token");
  });

  test("every issuer on this machine counts as loopback, whatever its spelling", () => {
    for (const url of [
      "http://127.0.0.1:3010",
      "http://127.8.9.10",
      "https://localhost/",
      "http://LOCALHOST.:3010",
      "http://issuer.localhost",
      "http://[::1]:3010",
      "http://[::ffff:127.0.0.1]",
      "http://0.0.0.0:3010",
      "http://2130706433/",
      "http://0x7f.1/",
    ])
      assert.ok(isLoopbackUrl(url), url);
    for (const url of ["https://kubernetes.default.svc", "https://10.0.0.1", "https://[::2]", "not a url"])
      assert.ok(!isLoopbackUrl(url), url);
  });
});

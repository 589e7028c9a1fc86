import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { configProblems as problems } from "@taituri/config";
import { loadConversationConfig } from "@taituri/conversation-service/config";
import { loadGenerationConfig } from "@taituri/generation-service/config";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { loadPaymentConfig } from "@taituri/payment-service/config";

/**
 * Outside DEPLOYMENT_ENVIRONMENT=local no service starts on a development default (docs/security.md):
 * each service's config, given valid production settings, is refused once any one development value
 * is back, naming its variable; and a real process exits 78 (EX_CONFIG) saying so.
 */
const exec = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;

type Env = Record<string, string | undefined>;

const secret = (letter: string) => letter.repeat(32);
const ISSUER = "https://kubernetes.default.svc";
// What `npm start` gives ingress (scripts/start.ts): all three are public.
const NPM_START_INGRESS = {
  WHATSAPP_APP_SECRET: "local-app-secret",
  WHATSAPP_VERIFY_TOKEN: "local-verify-token",
  WHATSAPP_ACCESS_TOKEN: "local-access-token",
};
// The WhatsApp simulator's clock, which `npm start` gives ingress and the conversation: any value
// is a development one.
const DEV_CLOCK = { DEV_CLOCK_URL: "http://127.0.0.1:3900/sim/api/clock" };
const devClock = [
  { set: DEV_CLOCK, refused: ["DEV_CLOCK_URL"] },
  { set: { DEV_CLOCK_URL: "https://clock.example.com/offset" }, refused: ["DEV_CLOCK_URL"] },
];

interface Service {
  load(env: Env): unknown;
  /** Valid production settings: no development value in effect. */
  production: Env;
  /** Each development value, as the settings it takes (undefined: unset, the default), and the variables refused. */
  development: Array<{ set: Env; refused: string[] }>;
  /** What `npm start` gives the service (scripts/start.ts): development values, fine under local. */
  npmStart: Env;
  /** The variables a start with DEPLOYMENT_ENVIRONMENT=production and npmStart alone refuses. */
  bare: string[];
}

const base = { DEPLOYMENT_ENVIRONMENT: "production", PSEUDONYM_KEY: secret("k") };
/** The base of a service that uses Kafka: a login to the brokers. */
const kafkaBase = {
  ...base,
  KAFKA_SASL_MECHANISM: "scram-sha-512",
  KAFKA_SASL_USERNAME: "taituri",
  KAFKA_SASL_PASSWORD: secret("p"),
};
const noLogin = {
  KAFKA_SASL_MECHANISM: undefined,
  KAFKA_SASL_USERNAME: undefined,
  KAFKA_SASL_PASSWORD: undefined,
};
const kafkaLogin = [{ set: noLogin, refused: ["KAFKA_SASL_MECHANISM"] }];
const pseudonymKey = [
  { set: { PSEUDONYM_KEY: undefined }, refused: ["PSEUDONYM_KEY"] },
  { set: { PSEUDONYM_KEY: "taituri-dev-pseudonym-key" }, refused: ["PSEUDONYM_KEY"] },
  { set: { PSEUDONYM_KEY: "a-key-of-31-bytes-xxxxxxxxxxxxx" }, refused: ["PSEUDONYM_KEY"] },
];
const loopbackIssuers = ["http://127.0.0.1:3010", "http://localhost:8080", "http://[::1]:3010"];
const issuer = [
  { set: { OIDC_ISSUER_URL: undefined }, refused: ["OIDC_ISSUER_URL"] },
  ...loopbackIssuers.map((url) => ({ set: { OIDC_ISSUER_URL: url }, refused: ["OIDC_ISSUER_URL"] })),
];

const services: Record<string, Service> = {
  ingress: {
    load: loadIngressConfig,
    production: {
      ...kafkaBase,
      WHATSAPP_APP_SECRET: "0123456789abcdef0123456789abcdef",
      WHATSAPP_VERIFY_TOKEN: "a-verify-token-of-our-own",
      WHATSAPP_ACCESS_TOKEN: "EAAG-a-system-user-token",
    },
    development: [
      ...pseudonymKey,
      ...kafkaLogin,
      { set: { WHATSAPP_APP_SECRET: "local-app-secret" }, refused: ["WHATSAPP_APP_SECRET"] },
      { set: { WHATSAPP_APP_SECRET: "0123456789abcdef" }, refused: ["WHATSAPP_APP_SECRET"] },
      // During a rotation every secret counts.
      { set: { WHATSAPP_APP_SECRET: `${secret("n")},local-app-secret` }, refused: ["WHATSAPP_APP_SECRET"] },
      { set: { WHATSAPP_VERIFY_TOKEN: "local-verify-token" }, refused: ["WHATSAPP_VERIFY_TOKEN"] },
      { set: { WHATSAPP_ACCESS_TOKEN: "local-access-token" }, refused: ["WHATSAPP_ACCESS_TOKEN"] },
      ...devClock,
    ],
    npmStart: { ...NPM_START_INGRESS, ...DEV_CLOCK },
    bare: [
      "KAFKA_SASL_MECHANISM",
      "PSEUDONYM_KEY",
      "WHATSAPP_APP_SECRET",
      "WHATSAPP_VERIFY_TOKEN",
      "WHATSAPP_ACCESS_TOKEN",
      "DEV_CLOCK_URL",
    ],
  },
  conversation: {
    load: loadConversationConfig,
    production: kafkaBase,
    development: [
      ...pseudonymKey,
      ...kafkaLogin,
      { set: { CONVERSATION_CRASH_AT: "after_commit" }, refused: ["CONVERSATION_CRASH_AT"] },
      ...devClock,
    ],
    npmStart: DEV_CLOCK,
    bare: ["KAFKA_SASL_MECHANISM", "PSEUDONYM_KEY", "DEV_CLOCK_URL"],
  },
  generation: {
    load: loadGenerationConfig,
    production: {
      ...kafkaBase,
      IMAGE_PROVIDER: "openai",
      OPENAI_API_KEY: "sk-test",
      OIDC_ISSUER_URL: ISSUER,
      OIDC_TOKEN_FILE: "/var/run/secrets/taituri/limiter-token",
    },
    development: [
      ...pseudonymKey,
      ...kafkaLogin,
      ...issuer,
      { set: { IMAGE_PROVIDER: undefined, OPENAI_API_KEY: undefined }, refused: ["IMAGE_PROVIDER"] },
      { set: { IMAGE_PROVIDER: "local" }, refused: ["IMAGE_PROVIDER"] },
      { set: { OIDC_CLIENT_SECRET: "local-generation" }, refused: ["OIDC_CLIENT_SECRET"] },
      // npm start's images provider: the WhatsApp simulator, with a public key.
      { set: { OPENAI_API_KEY: "local-openai-key" }, refused: ["OPENAI_API_KEY"] },
    ],
    npmStart: {
      OIDC_ISSUER_URL: "http://127.0.0.1:3010",
      OIDC_CLIENT_SECRET: "local-generation",
      IMAGE_PROVIDER: "openai",
      OPENAI_BASE_URL: "http://127.0.0.1:3900/v1",
      OPENAI_API_KEY: "local-openai-key",
    },
    bare: [
      "KAFKA_SASL_MECHANISM",
      "PSEUDONYM_KEY",
      "OPENAI_API_KEY",
      "OIDC_ISSUER_URL",
      "OIDC_CLIENT_SECRET",
    ],
  },
  payment: {
    load: loadPaymentConfig,
    production: {
      ...kafkaBase,
      PAYMENT_PROVIDER: "stripe",
      STRIPE_SECRET_KEY: "sk_test_key",
      STRIPE_WEBHOOK_SECRET: "whsec_short_is_stripes_own",
      OIDC_ISSUER_URL: ISSUER,
      ORDERS_IMAGE_URL_SECRET: secret("i"),
      PAYMENT_PUBLIC_URL: "https://pay.shop.example",
    },
    development: [
      ...pseudonymKey,
      ...kafkaLogin,
      ...issuer,
      // The local provider takes its webhook secret with it: both are named.
      {
        set: { PAYMENT_PROVIDER: undefined },
        refused: ["PAYMENT_PROVIDER", "PAYMENT_LOCAL_WEBHOOK_SECRET"],
      },
      {
        set: { PAYMENT_PROVIDER: "local", PAYMENT_LOCAL_WEBHOOK_SECRET: secret("w") },
        refused: ["PAYMENT_PROVIDER"],
      },
      {
        set: { PAYMENT_PROVIDER: "local", PAYMENT_LOCAL_WEBHOOK_SECRET: "local-checkout-webhook-secret" },
        refused: ["PAYMENT_PROVIDER", "PAYMENT_LOCAL_WEBHOOK_SECRET"],
      },
      {
        set: { PAYMENT_PROVIDER: "local", PAYMENT_LOCAL_WEBHOOK_SECRET: "sixteen-or-more-bytes" },
        refused: ["PAYMENT_PROVIDER", "PAYMENT_LOCAL_WEBHOOK_SECRET"],
      },
      { set: { ORDERS_IMAGE_URL_SECRET: undefined }, refused: ["ORDERS_IMAGE_URL_SECRET"] },
      // Checkout links naming the address the service listens on reach no shopper.
      { set: { PAYMENT_PUBLIC_URL: undefined }, refused: ["PAYMENT_PUBLIC_URL"] },
      {
        set: { ORDERS_IMAGE_URL_SECRET: "taituri-local-design-link-secret-not-for-production" },
        refused: ["ORDERS_IMAGE_URL_SECRET"],
      },
      // ORDERS_* secrets under 32 characters are refused everywhere, by the schema itself.
      { set: { ORDERS_IMAGE_URL_SECRET: "short" }, refused: ["ORDERS_IMAGE_URL_SECRET"] },
      {
        set: { ORDERS_WEBHOOK_URL: "https://shop.example/orders", ORDERS_WEBHOOK_SECRET: "short" },
        refused: ["ORDERS_WEBHOOK_SECRET"],
      },
    ],
    npmStart: { OIDC_ISSUER_URL: "http://127.0.0.1:3010" },
    bare: [
      "KAFKA_SASL_MECHANISM",
      "PSEUDONYM_KEY",
      "PAYMENT_PUBLIC_URL",
      "PAYMENT_PROVIDER",
      "PAYMENT_LOCAL_WEBHOOK_SECRET",
      "OIDC_ISSUER_URL",
      "ORDERS_IMAGE_URL_SECRET",
    ],
  },
  limiter: {
    load: loadLimiterConfig,
    production: { ...base, OIDC_ISSUER_URL: ISSUER },
    development: [...pseudonymKey, ...issuer],
    npmStart: { OIDC_ISSUER_URL: "http://127.0.0.1:3010" },
    bare: ["PSEUDONYM_KEY", "OIDC_ISSUER_URL"],
  },
};

/** The variable a problem line names ("NAME: …" or "NAME is required"). */
const named = (problem: string) => /^[A-Z][A-Z0-9_]*/.exec(problem)?.[0];

const describeSet = (set: Env) =>
  Object.entries(set)
    .map(([name, value]) => (value === undefined ? `${name} unset` : `${name}=${value}`))
    .join(" ");

for (const [name, service] of Object.entries(services)) {
  describe(`${name} under DEPLOYMENT_ENVIRONMENT=production`, () => {
    test("loads with its production settings", () => {
      assert.doesNotThrow(() => service.load(service.production));
    });

    for (const { set, refused } of service.development) {
      test(`refuses ${describeSet(set)}, naming ${refused.join(", ")}`, () => {
        const found = problems(() => service.load({ ...service.production, ...set }));
        assert.deepEqual(found.map(named), refused, found.join("\n"));
      });
    }
  });

  test(`${name} under local loads with what npm start gives it${name === "ingress" ? "" : ", or nothing"}`, () => {
    assert.doesNotThrow(() => service.load(service.npmStart));
    if (name !== "ingress") assert.doesNotThrow(() => service.load({}));
  });
}

test("Kafka without a login: refused outside local unless KAFKA_ALLOW_UNAUTHENTICATED; the limiter has no Kafka", () => {
  const production = { ...services.conversation?.production, ...noLogin };
  assert.deepEqual(
    problems(() => loadConversationConfig(production)),
    [
      "KAFKA_SASL_MECHANISM: no login to Kafka, so anyone who reaches the brokers can write the paid requests; set KAFKA_SASL_MECHANISM (oauthbearer with KAFKA_OAUTH_TOKEN_FILE in Kubernetes), or KAFKA_ALLOW_UNAUTHENTICATED=true if nothing else can reach the brokers (DEPLOYMENT_ENVIRONMENT=production)",
    ],
  );
  assert.doesNotThrow(() => loadConversationConfig({ ...production, KAFKA_ALLOW_UNAUTHENTICATED: "true" }));
  assert.doesNotThrow(() => loadLimiterConfig({ ...services.limiter?.production }));
});

test("the message names what to set and the environment", () => {
  assert.deepEqual(
    problems(() => loadPaymentConfig({ ...services.payment?.production, PSEUDONYM_KEY: undefined })),
    [
      "PSEUDONYM_KEY: the public development default; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=production)",
    ],
  );
});

describe("a service started for real with its development defaults", { concurrency: true }, () => {
  for (const [name, service] of Object.entries(services)) {
    test(`${name} exits 78, naming each one on stderr`, async () => {
      const env = { PATH: process.env.PATH, DEPLOYMENT_ENVIRONMENT: "production", ...service.npmStart };
      const exit = await exec(process.execPath, [`services/${name}/src/main.ts`], {
        cwd: root,
        env,
        timeout: 30_000,
      }).then(
        () => assert.fail(`${name} started`),
        (error: { code?: number; stderr?: string }) => error,
      );
      assert.equal(exit.code, 78, exit.stderr);
      const [heading, ...lines] = (exit.stderr ?? "").trimEnd().split("\n");
      assert.equal(heading, "Invalid configuration:", exit.stderr);
      assert.deepEqual(
        lines.map((line) => named(line.trim())),
        service.bare,
        exit.stderr,
      );
      for (const line of lines) assert.match(line, / \(DEPLOYMENT_ENVIRONMENT=production\)$/, line);
    });
  }
});

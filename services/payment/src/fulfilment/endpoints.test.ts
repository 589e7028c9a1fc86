import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { configProblems as problems } from "@taituri/config";
import { loadPaymentConfig } from "../config.ts";
import { endpointUrlProblem, parseSecretsFile, resolveEndpoints } from "./endpoints.ts";

const SECRET_A = "a".repeat(32);
const SECRET_B = "b".repeat(40);
const DEFAULT = "d".repeat(32);
// Production with no development default in effect (those are refused outside local).
const PRODUCTION = {
  DEPLOYMENT_ENVIRONMENT: "production",
  PSEUDONYM_KEY: "p".repeat(32),
  PAYMENT_PROVIDER: "stripe",
  STRIPE_SECRET_KEY: "sk_test_x",
  STRIPE_WEBHOOK_SECRET: "whsec_x",
  OIDC_ISSUER_URL: "https://issuer.example",
  KAFKA_ALLOW_UNAUTHENTICATED: "true",
  PAYMENT_PUBLIC_URL: "https://pay.example",
};
const shops = [
  { id: "shop-a", fulfilment: { url: "https://a.example/orders" } },
  { id: "shop-b", fulfilment: { url: "https://b.example/hook?token=x" } },
  { id: "demo-shop" },
];

describe("endpoint resolution", () => {
  test("a catalog URL with its secret from the file; the default endpoint for shops the catalog gives none", () => {
    const { endpoints, warnings } = resolveEndpoints(shops, {
      defaultUrl: "https://orders.example/in",
      defaultSecret: DEFAULT,
      secrets: { "shop-a": [SECRET_A], "shop-b": [SECRET_B, SECRET_A] },
      local: false,
    });
    assert.deepEqual(warnings, []);
    assert.deepEqual(endpoints.forShop("shop-a"), {
      url: "https://a.example/orders",
      secrets: [SECRET_A],
      from: "catalog",
    });
    assert.deepEqual(endpoints.forShop("shop-b")?.secrets, [SECRET_B, SECRET_A]);
    assert.deepEqual(endpoints.forShop("demo-shop"), {
      url: "https://orders.example/in",
      secrets: [DEFAULT],
      from: "default",
    });
  });

  test("no default endpoint: a shop without a catalog URL has none (its orders go to the orders CLI)", () => {
    const { endpoints } = resolveEndpoints(shops, {
      secrets: { "shop-a": [SECRET_A], "shop-b": [SECRET_B] },
      local: false,
    });
    assert.equal(endpoints.forShop("demo-shop"), undefined);
    assert.equal(endpoints.forShop("shop-a")?.from, "catalog");
  });

  test("refuses to start: a URL without its secret, a short secret, plain http outside local; every problem named", () => {
    const found = problems(() =>
      resolveEndpoints(
        [
          { id: "no-secret", fulfilment: { url: "https://x.example" } },
          { id: "short", fulfilment: { url: "https://y.example" } },
          { id: "plain", fulfilment: { url: "http://shop.example/orders" } },
        ],
        { secrets: { short: ["too-short"], plain: [SECRET_A] }, local: false },
      ),
    );
    assert.deepEqual(found, [
      "shop no-secret has a fulfilment.url but no secret in ORDERS_WEBHOOK_SECRETS_FILE",
      "shop short: its secret must be at least 32 characters",
      "shop plain: fulfilment.url must be https outside DEPLOYMENT_ENVIRONMENT=local (plain http only to a loopback address)",
    ]);
  });

  test("plain http: fine locally, and to loopback anywhere", () => {
    assert.equal(endpointUrlProblem("http://shop.example/orders", true), undefined);
    for (const url of ["http://127.0.0.1:8080/o", "http://localhost/o", "http://[::1]:9/o"])
      assert.equal(endpointUrlProblem(url, false), undefined, url);
    assert.match(endpointUrlProblem("ftp://x.example", true) ?? "", /http\(s\)/);
    assert.match(endpointUrlProblem("https://u:p@x.example", true) ?? "", /credentials/);
    assert.match(endpointUrlProblem("not a url", true) ?? "", /not a URL/);
  });

  test("secrets nobody uses are warned about, not refused", () => {
    const { warnings } = resolveEndpoints([{ id: "demo-shop" }], {
      secrets: { "demo-shop": [SECRET_A], gone: [SECRET_B] },
      local: false,
    });
    assert.equal(warnings.length, 2);
    assert.match(warnings[0] ?? "", /demo-shop.*no fulfilment\.url/);
    assert.match(warnings[1] ?? "", /gone.*catalog does not list/);
  });

  test("the secrets file: one secret or a list per shop; anything else refused without quoting the file", () => {
    assert.deepEqual(parseSecretsFile(`{"a":"${SECRET_A}","b":["${SECRET_B}","${SECRET_A}"]}`, "/s.json"), {
      a: [SECRET_A],
      b: [SECRET_B, SECRET_A],
    });
    for (const text of ["{", "[]", '"x"', '{"a":1}', '{"a":[]}', '{"a":["x",2]}']) {
      const [problem] = problems(() => parseSecretsFile(text, "/s.json"));
      assert.match(problem ?? "", /^ORDERS_WEBHOOK_SECRETS_FILE \(\/s\.json\): /, text);
    }
    const [problem] = problems(() => parseSecretsFile('{"a": "sup3r-secret", oops}', "/s.json"));
    assert.doesNotMatch(problem ?? "", /sup3r/);
  });
});

describe("the orders settings", () => {
  test("defaults: 10 s timeout, retries from 10 s to 1 h, 1 s poll, 7-day design links, a local design key", () => {
    const c = loadPaymentConfig({});
    assert.equal(c.ORDERS_WEBHOOK_TIMEOUT_MS, 10_000);
    assert.equal(c.ORDERS_RETRY_BASE_MS, 10_000);
    assert.equal(c.ORDERS_RETRY_MAX_MS, 3_600_000);
    assert.equal(c.ORDERS_POLL_MS, 1000);
    assert.equal(c.ORDERS_IMAGE_URL_TTL_S, 604_800);
    assert.equal(c.ORDERS_WEBHOOK_URL, undefined);
    assert.ok(c.ORDERS_IMAGE_URL_SECRET.length >= 32);
  });

  test("outside local, ORDERS_IMAGE_URL_SECRET is required; given, it is the key", () => {
    assert.deepEqual(
      problems(() => loadPaymentConfig(PRODUCTION)),
      [
        "ORDERS_IMAGE_URL_SECRET: the public development default; set a secret of at least 32 bytes (DEPLOYMENT_ENVIRONMENT=production)",
      ],
    );
    const c = loadPaymentConfig({ ...PRODUCTION, ORDERS_IMAGE_URL_SECRET: SECRET_A });
    assert.equal(c.ORDERS_IMAGE_URL_SECRET, SECRET_A);
    assert.ok(problems(() => loadPaymentConfig({ ORDERS_IMAGE_URL_SECRET: "short" })).length > 0);
  });

  test("ORDERS_WEBHOOK_URL needs ORDERS_WEBHOOK_SECRET of 32+ characters, and https outside local", () => {
    assert.deepEqual(
      problems(() => loadPaymentConfig({ ORDERS_WEBHOOK_URL: "https://o.example" })),
      ["ORDERS_WEBHOOK_SECRET: ORDERS_WEBHOOK_SECRET is required with ORDERS_WEBHOOK_URL"],
    );
    const short = problems(() =>
      loadPaymentConfig({ ORDERS_WEBHOOK_URL: "https://o.example", ORDERS_WEBHOOK_SECRET: "short" }),
    );
    assert.ok(
      short.some((p) => p.startsWith("ORDERS_WEBHOOK_SECRET:")),
      short.join("\n"),
    );
    assert.deepEqual(
      problems(() => loadPaymentConfig({ ORDERS_WEBHOOK_SECRET: DEFAULT })),
      ["ORDERS_WEBHOOK_SECRET: ORDERS_WEBHOOK_SECRET is set but ORDERS_WEBHOOK_URL is not: it signs nothing"],
    );
    const plain = problems(() =>
      loadPaymentConfig({
        ...PRODUCTION,
        ORDERS_IMAGE_URL_SECRET: SECRET_A,
        ORDERS_WEBHOOK_URL: "http://o.example",
        ORDERS_WEBHOOK_SECRET: DEFAULT,
      }),
    );
    assert.equal(plain.length, 1);
    assert.match(plain[0] ?? "", /^ORDERS_WEBHOOK_URL: ORDERS_WEBHOOK_URL must be https outside/);
    const ok = loadPaymentConfig({ ORDERS_WEBHOOK_URL: "http://o.example", ORDERS_WEBHOOK_SECRET: DEFAULT });
    assert.equal(ok.ORDERS_WEBHOOK_URL, "http://o.example");
  });

  test("a retry base above the max is refused", () => {
    assert.deepEqual(
      problems(() => loadPaymentConfig({ ORDERS_RETRY_BASE_MS: "5000", ORDERS_RETRY_MAX_MS: "1000" })),
      ["ORDERS_RETRY_BASE_MS: ORDERS_RETRY_BASE_MS must not exceed ORDERS_RETRY_MAX_MS"],
    );
  });
});

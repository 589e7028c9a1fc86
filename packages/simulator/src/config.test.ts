import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configProblems } from "@taituri/config";
import { schema as conversationSchema } from "@taituri/conversation-service/config";
import { businessNumbersOf, loadSimulatorConfig } from "./config.ts";

const required = {
  SIMULATOR_WEBHOOK_URL: "http://ingress:3000/webhook",
  WHATSAPP_APP_SECRET: "current, previous",
  WHATSAPP_ACCESS_TOKEN: "token",
};
const defaultCatalog = conversationSchema.shape.CATALOG_FILE.parse(undefined);

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "simulator-config-"));
});
after(() => rm(scratch, { recursive: true, force: true }));

test("the defaults: loopback on 3900, the conversation's catalog, no Jaeger; the first app secret signs", () => {
  const config = loadSimulatorConfig(required);
  assert.equal(config.SIMULATOR_PORT, 3900);
  assert.equal(config.SIMULATOR_HOST, "127.0.0.1");
  assert.equal(config.SIMULATOR_WEBHOOK_URL, "http://ingress:3000/webhook");
  assert.equal(config.WHATSAPP_APP_SECRET, "current");
  assert.equal(config.WHATSAPP_ACCESS_TOKEN, "token");
  assert.equal(config.CATALOG_FILE, defaultCatalog);
  assert.equal(config.SIMULATOR_JAEGER_URL, undefined);
  assert.equal(config.SIMULATOR_JAEGER_UI, false);
});

test("every setting is read", () => {
  const config = loadSimulatorConfig({
    ...required,
    SIMULATOR_PORT: "8080",
    SIMULATOR_HOST: "0.0.0.0",
    CATALOG_FILE: "/etc/taituri/catalog.yaml",
    SIMULATOR_JAEGER_URL: "http://jaeger-query:16686",
    SIMULATOR_JAEGER_UI: "true",
    LOG_FORMAT: "pretty",
  });
  assert.equal(config.SIMULATOR_PORT, 8080);
  assert.equal(config.SIMULATOR_HOST, "0.0.0.0");
  assert.equal(config.CATALOG_FILE, "/etc/taituri/catalog.yaml");
  assert.equal(config.SIMULATOR_JAEGER_URL, "http://jaeger-query:16686");
  assert.equal(config.SIMULATOR_JAEGER_UI, true);
  assert.equal(config.LOG_FORMAT, "pretty");
});

test("what ingress must be told is required, each named", () => {
  assert.deepEqual(configProblems(() => loadSimulatorConfig({})).sort(), [
    "SIMULATOR_WEBHOOK_URL is required",
    "WHATSAPP_ACCESS_TOKEN is required",
    "WHATSAPP_APP_SECRET is required",
  ]);
  // An empty value is unset, as in every service; a list of nothing but commas is no secret.
  assert.deepEqual(
    configProblems(() => loadSimulatorConfig({ ...required, WHATSAPP_ACCESS_TOKEN: " " })),
    ["WHATSAPP_ACCESS_TOKEN is required"],
  );
  assert.deepEqual(
    configProblems(() => loadSimulatorConfig({ ...required, WHATSAPP_APP_SECRET: ", ," })),
    ["WHATSAPP_APP_SECRET: WHATSAPP_APP_SECRET is required"],
  );
});

test("bad values are refused all at once, each naming its variable", () => {
  const problems = configProblems(() =>
    loadSimulatorConfig({
      ...required,
      SIMULATOR_PORT: "70000",
      SIMULATOR_WEBHOOK_URL: "ingress:3000/webhook",
      SIMULATOR_JAEGER_URL: "jaeger",
      SIMULATOR_JAEGER_UI: "maybe",
      LOG_LEVEL: "loud",
    }),
  );
  assert.deepEqual(
    problems.map((p) => p.split(":")[0]).sort(),
    ["LOG_LEVEL", "SIMULATOR_JAEGER_UI", "SIMULATOR_JAEGER_URL", "SIMULATOR_PORT", "SIMULATOR_WEBHOOK_URL"],
    problems.join("\n"),
  );
});

test("Jaeger's UI without Jaeger's URL is refused", () => {
  assert.deepEqual(
    configProblems(() => loadSimulatorConfig({ ...required, SIMULATOR_JAEGER_UI: "true" })),
    [
      "SIMULATOR_JAEGER_UI: is true but SIMULATOR_JAEGER_URL is not set: set Jaeger's URL, or unset SIMULATOR_JAEGER_UI",
    ],
  );
});

test("outside local the public pseudonym key is refused, as in the services", () => {
  const staging = { ...required, DEPLOYMENT_ENVIRONMENT: "staging" };
  const [problem, ...others] = configProblems(() => loadSimulatorConfig(staging));
  assert.deepEqual(others, []);
  assert.match(problem ?? "", /^PSEUDONYM_KEY: /);
  const key = "k".repeat(32);
  assert.equal(loadSimulatorConfig({ ...staging, PSEUDONYM_KEY: key }).PSEUDONYM_KEY, key);
});

test("the business numbers come from the catalog: Meta's example number for a shop serving any", () => {
  assert.deepEqual(businessNumbersOf({ CATALOG_FILE: defaultCatalog }), [
    {
      phoneNumberId: "106540352242922",
      displayPhoneNumber: "15550783881",
      wabaId: "102290129340398",
      name: "Demo shop",
    },
  ]);
  const text = readFileSync(defaultCatalog, "utf8");
  const listed = text.replace('phoneNumberIds: ["*"]', 'phoneNumberIds: ["123456789012345", "42"]');
  assert.notEqual(listed, text);
  const file = join(scratch, "catalog.yaml");
  writeFileSync(file, listed);
  assert.deepEqual(
    businessNumbersOf({ CATALOG_FILE: file }).map((n) => [n.phoneNumberId, n.displayPhoneNumber]),
    [
      ["123456789012345", "15559012345"],
      ["42", "15550000042"],
    ],
  );
});

test("a catalog that is missing or invalid is refused naming CATALOG_FILE", () => {
  const missing = join(scratch, "nowhere.yaml");
  const [notFound] = configProblems(() => businessNumbersOf({ CATALOG_FILE: missing }));
  assert.match(notFound ?? "", new RegExp(`^CATALOG_FILE: ${missing}: ENOENT`));
  const invalid = join(scratch, "invalid.yaml");
  writeFileSync(invalid, "shops: []\n");
  const [problem, ...others] = configProblems(() => businessNumbersOf({ CATALOG_FILE: invalid }));
  assert.deepEqual(others, []);
  assert.match(problem ?? "", new RegExp(`^CATALOG_FILE: ${invalid}: .*shops`));
  assert.doesNotMatch(problem ?? "", /\n/);
});

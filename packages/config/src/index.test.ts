import assert from "node:assert/strict";
import { test } from "node:test";
import { baseSchema, ConfigError, configProblems, csv, flag, loadConfig, port, z } from "./index.ts";

const schema = baseSchema.extend({
  PORT: port(3000),
  SECRET: z.string().min(1),
  SECRETS: csv(),
  ENABLED: flag(true),
});

test("defaults apply and lists are split", () => {
  const config = loadConfig(schema, { SECRET: "s", SECRETS: "a, b,,c" });
  assert.equal(config.PORT, 3000);
  assert.deepEqual(config.SECRETS, ["a", "b", "c"]);
  assert.deepEqual(config.KAFKA_BROKERS, ["127.0.0.1:19092"]);
  assert.equal(config.ENABLED, true);
  assert.equal(config.LOG_FORMAT, "json");
});

test("logs are json or pretty, in any deployment environment, and nothing else", () => {
  const env = { SECRET: "s", SECRETS: "x" };
  assert.equal(loadConfig(schema, { ...env, LOG_FORMAT: "pretty" }).LOG_FORMAT, "pretty");
  // Pretty lines are redacted as JSON ones are: a deployment that asks for them loses its log
  // shipper's parsing, not its privacy, so they are not a development default to refuse.
  const production = { ...env, DEPLOYMENT_ENVIRONMENT: "production", LOG_FORMAT: "pretty" };
  assert.ok(!configProblems(() => loadConfig(schema, production)).some((p) => p.startsWith("LOG_FORMAT")));
  assert.deepEqual(
    configProblems(() => loadConfig(schema, { ...env, LOG_FORMAT: "text" })).filter((p) =>
      p.startsWith("LOG_FORMAT"),
    ).length,
    1,
  );
});

test("every problem is reported, each naming its variable", () => {
  assert.throws(
    () => loadConfig(schema, { PORT: "eighty", SECRETS: "x", MONGO_URL: "not a url" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.ok(error.problems.includes("SECRET is required"), error.message);
      assert.ok(
        error.problems.some((p) => p.startsWith("PORT:")),
        error.message,
      );
      assert.ok(
        error.problems.some((p) => p.startsWith("MONGO_URL:")),
        error.message,
      );
      return true;
    },
  );
});

test("an empty value counts as unset and a false flag is false", () => {
  const config = loadConfig(schema, { SECRET: "s", SECRETS: "x", PORT: "", ENABLED: "false" });
  assert.equal(config.PORT, 3000);
  assert.equal(config.ENABLED, false);
});

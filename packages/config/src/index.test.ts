import assert from "node:assert/strict";
import { test } from "node:test";
import { baseSchema, ConfigError, csv, flag, loadConfig, port, z } from "./index.ts";

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

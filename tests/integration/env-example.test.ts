import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import * as conversation from "@taituri/conversation-service/config";
import * as generation from "@taituri/generation-service/config";
import * as ingress from "@taituri/ingress-service/config";
import * as limiter from "@taituri/limiter-service/config";
import * as payment from "@taituri/payment-service/config";

/**
 * .env.example is where an operator learns what can be set: every setting a config schema reads has
 * a `NAME=` line there (commented out or not), and every line there is read by something. A setting
 * added to a schema without its line fails here, naming it. The settings of packages/config's
 * baseSchema are checked through the services' schemas, each of which extends it.
 */
const root = new URL("../../", import.meta.url).pathname;

// Every module services/<name>/src/config.ts, each exported zod schema of which is checked (the
// limiter's holds its operator CLI's `cliSchema` beside the service's `schema`).
const configModules: Record<string, Record<string, unknown>> = {
  conversation,
  generation,
  ingress,
  limiter,
  payment,
};

// Variables in .env.example that no config schema reads, each with what reads it.
const READ_ELSEWHERE: Record<string, string> = {
  OTEL_TRACES_EXPORTER:
    "the OpenTelemetry SDK (packages/telemetry/src/sdk.ts); when set, scripts/start.ts starts no Jaeger",
  OTEL_EXPORTER_OTLP_ENDPOINT:
    "the OpenTelemetry SDK's OTLP exporter; when set, scripts/start.ts starts no Jaeger and sends spans there",
  OTEL_TRACES_SAMPLER: "the OpenTelemetry SDK's sampler",
  OTEL_TRACES_SAMPLER_ARG: "the OpenTelemetry SDK's sampler (the ratio of parentbased_traceidratio)",
};

/** What this test reads of a zod 4 schema: its definition (zod's `_zod.def`, kept for library authors). */
interface ZodSchema {
  _zod: { def: { type: string; shape?: Record<string, unknown>; in?: ZodSchema; innerType?: ZodSchema } };
}

const isZodSchema = (value: unknown): value is ZodSchema =>
  typeof value === "object" && value !== null && "_zod" in value;

/**
 * The variables a config schema reads: the keys of its object, found through what may wrap it (a
 * `.transform` or `.pipe` makes a pipe whose input is the object; `.default`, `.optional` and the
 * like keep it as `innerType`). A schema whose object cannot be found fails the test rather than
 * being checked for nothing.
 */
function settingsOf(schema: ZodSchema, where: string): string[] {
  const def = schema._zod.def;
  if (def.type === "object" && def.shape) return Object.keys(def.shape);
  if (def.type === "pipe" && def.in) return settingsOf(def.in, where);
  if (def.innerType) return settingsOf(def.innerType, where);
  throw new Error(
    `${where}: no object schema found inside a zod "${def.type}"; teach settingsOf this wrapper`,
  );
}

/** Each variable a config schema reads, with the schemas that read it (e.g. `limiter.cliSchema`). */
function schemaSettings(): Map<string, string[]> {
  const readers = new Map<string, string[]>();
  for (const [service, module] of Object.entries(configModules)) {
    assert.ok(isZodSchema(module.schema), `services/${service}/src/config.ts exports no zod \`schema\``);
    for (const [name, value] of Object.entries(module)) {
      if (!isZodSchema(value)) continue;
      const where = `${service}.${name}`;
      const settings = settingsOf(value, where);
      assert.ok(settings.length > 0, `${where} reads no setting`);
      for (const setting of settings) readers.set(setting, [...(readers.get(setting) ?? []), where]);
    }
  }
  return readers;
}

/** Each variable with a `NAME=` line in .env.example, commented out (`# NAME=…`) or not, with its line numbers. */
function documented(): Map<string, number[]> {
  const lines = readFileSync(join(root, ".env.example"), "utf8").split("\n");
  const names = new Map<string, number[]>();
  lines.forEach((line, index) => {
    const name = /^#?\s*([A-Z][A-Z0-9_]*)=/.exec(line)?.[1];
    if (name) names.set(name, [...(names.get(name) ?? []), index + 1]);
  });
  return names;
}

/** Fails naming each entry of `found`, if there is any. */
function assertNone(found: string[], heading: string): void {
  if (found.length > 0) assert.fail(`${heading}:\n  ${found.join("\n  ")}`);
}

test("every service's config module is checked", () => {
  const services = readdirSync(join(root, "services")).filter((name) =>
    existsSync(join(root, "services", name, "src", "config.ts")),
  );
  assert.deepEqual(
    services.sort(),
    Object.keys(configModules).sort(),
    "configModules must list the config.ts of every service under services/",
  );
});

test("every setting a config schema reads is in .env.example", () => {
  const inFile = documented();
  const missing = [...schemaSettings()]
    .filter(([name]) => !inFile.has(name))
    .map(([name, readers]) => `${name} (${readers.join(", ")})`);
  assertNone(missing, "missing from .env.example, each needs a `# NAME=default` line and a comment");
});

test("every variable in .env.example is read by a config schema or by what READ_ELSEWHERE names", () => {
  const read = schemaSettings();
  const inFile = documented();
  const stale = [...inFile]
    .filter(([name]) => !read.has(name) && !(name in READ_ELSEWHERE))
    .map(([name, lines]) => `${name} (line ${lines.join(", ")})`);
  assertNone(stale, "in .env.example but read by no config schema (nor in READ_ELSEWHERE)");
  // The allow-list stays the few variables it has to excuse.
  const needless = Object.keys(READ_ELSEWHERE).filter((name) => read.has(name) || !inFile.has(name));
  assertNone(needless, "in READ_ELSEWHERE but read by a config schema, or not in .env.example");
});

test("each variable has one line in .env.example", () => {
  const repeated = [...documented()]
    .filter(([, lines]) => lines.length > 1)
    .map(([name, lines]) => `${name} (lines ${lines.join(", ")})`);
  assertNone(repeated, "in .env.example more than once");
});

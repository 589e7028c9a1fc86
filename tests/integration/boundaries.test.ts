import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";

/**
 * The import boundaries in .dependency-cruiser.json are checked by dependency-cruiser on the real
 * tree. To show that each rule bites, the same config is also run on a small workspace in a temp
 * dir. That workspace has one forbidden import of each kind, and beside them the allowed imports
 * that look most like them. Exactly the forbidden ones must be reported, each by its own rule, so a
 * rule that is dropped or loosened fails here, and so does one that starts to catch legitimate code.
 * To run the check by hand: `node_modules/.bin/node node_modules/.bin/depcruise services packages`.
 */
const root = new URL("../../", import.meta.url).pathname;
const config = join(root, ".dependency-cruiser.json");
const depcruise = join(root, "node_modules/dependency-cruiser/bin/dependency-cruiser.mjs");

interface Rule {
  name: string;
  comment?: string;
  severity?: string;
}
interface CruiseResult {
  modules: { source: string; dependencies: { module: string; resolved: string }[] }[];
  summary: { violations: { rule: Rule; from: string; to: string }[]; totalCruised: number };
}

/** Runs dependency-cruiser with the tree's config, from `cwd` over `paths`, and reads its JSON report. */
function cruise(cwd: string, paths: string[]): Promise<CruiseResult> {
  const args = [depcruise, "--config", config, "--output-type", "json", ...paths];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      try {
        resolve(JSON.parse(stdout) as CruiseResult);
      } catch {
        reject(new Error(`dependency-cruiser gave no result (${error?.message}): ${stderr}`));
      }
    });
  });
}

const described = (result: CruiseResult) =>
  result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();

const pkg = (name: string, exports: Record<string, string>) =>
  JSON.stringify({ name, version: "0.1.0", private: true, type: "module", exports });

// The workspace that the rules are tried on: two services, two packages, tests, and the npm
// packages the imports name. The files under node_modules/@taituri are symlinks, as npm
// workspaces lay them out.
const workspace: Record<string, string> = {
  "services/conversation/package.json": pkg("@taituri/conversation-service", {
    "./service": "./src/service.ts",
  }),
  "services/conversation/src/service.ts": "export const service = 1;\n",
  "services/conversation/src/adapters/store.ts": "export const store = 1;\n",
  "services/payment/package.json": pkg("@taituri/payment-service", { "./service": "./src/service.ts" }),
  "services/payment/src/service.ts": "export const service = 1;\n",
  "packages/proto/package.json": pkg("@taituri/proto", { ".": "./src/index.ts" }),
  "packages/proto/src/index.ts": "export const proto = 1;\n",
  "packages/kafka/package.json": pkg("@taituri/kafka", { ".": "./src/index.ts" }),
  "node_modules/mongodb/package.json": JSON.stringify({ name: "mongodb", main: "index.js" }),
  "node_modules/mongodb/index.js": "export class Db {}\n",
  "node_modules/zod/package.json": JSON.stringify({ name: "zod", main: "index.js" }),
  "node_modules/zod/index.js": "export const z = 1;\n",

  // Allowed: a package uses another package; a service imports itself by its package name; the
  // domain computes with node:crypto, parses with zod, and uses the generated message types.
  "packages/kafka/src/index.ts": 'import "@taituri/proto";\n',
  "services/conversation/src/main.ts": [
    'import "./domain/machine.ts";',
    'import "./adapters/store.ts";',
    'import "mongodb";',
    'import "@taituri/kafka";',
    'import "@taituri/conversation-service/service";',
  ].join("\n"),
  "services/conversation/src/domain/catalog.ts": "export const catalog = 1;\n",
  "services/conversation/src/domain/machine.ts": [
    'import "node:crypto";',
    'import "zod";',
    'import "@taituri/proto";',
    'import "./catalog.ts";',
  ].join("\n"),
  // Allowed: a test beside the domain reads its fixtures from disk, through a loader outside domain/.
  "services/conversation/src/testing/fixtures.ts": 'import "node:fs";\nimport "../domain/catalog.ts";\n',
  "services/conversation/src/domain/machine.test.ts": [
    'import "node:fs";',
    'import "../testing/fixtures.ts";',
    'import "./machine.ts";',
  ].join("\n"),
  // Allowed: cross-service tests import the services they start.
  "tests/integration/journey.test.ts": [
    'import "@taituri/conversation-service/service";',
    'import "@taituri/payment-service/service";',
  ].join("\n"),

  // Forbidden, one import a file.
  "services/conversation/src/adapters/payment-by-path.ts": 'import "../../../payment/src/service.ts";\n',
  "services/conversation/src/adapters/payment-by-name.ts": 'import "@taituri/payment-service/service";\n',
  "packages/kafka/src/service-by-path.ts": 'import "../../../services/payment/src/service.ts";\n',
  "packages/kafka/src/service-by-name.ts": 'import "@taituri/payment-service/service";\n',
  "services/conversation/src/domain/reads-disk.ts": 'import "node:fs";\n',
  "services/conversation/src/domain/spawns.ts": 'import "child_process";\n',
  "services/conversation/src/domain/queries.ts": 'import "mongodb";\n',
  "services/conversation/src/domain/typed-db.ts": 'import type { Db } from "mongodb";\nexport type D = Db;\n',
  "services/conversation/src/domain/publishes.ts": 'import "@taituri/kafka";\n',
  "services/conversation/src/domain/stores.ts": 'import "../adapters/store.ts";\n',
  "services/conversation/src/domain/configured.ts": 'import "../main.ts";\n',
  "services/conversation/src/adapters/missing.ts": 'import "./nowhere.ts";\n',
};
const links: Record<string, string> = {
  "node_modules/@taituri/conversation-service": "../../services/conversation",
  "node_modules/@taituri/payment-service": "../../services/payment",
  "node_modules/@taituri/proto": "../../packages/proto",
  "node_modules/@taituri/kafka": "../../packages/kafka",
};
const expected = [
  "no-service-imports-another: services/conversation/src/adapters/payment-by-path.ts → services/payment/src/service.ts",
  "no-service-imports-another: services/conversation/src/adapters/payment-by-name.ts → services/payment/src/service.ts",
  "no-package-imports-a-service: packages/kafka/src/service-by-path.ts → services/payment/src/service.ts",
  "no-package-imports-a-service: packages/kafka/src/service-by-name.ts → services/payment/src/service.ts",
  "domain-no-io-core-module: services/conversation/src/domain/reads-disk.ts → fs",
  "domain-no-io-core-module: services/conversation/src/domain/spawns.ts → child_process",
  "domain-no-io-library: services/conversation/src/domain/queries.ts → node_modules/mongodb/index.js",
  "domain-no-io-library: services/conversation/src/domain/typed-db.ts → node_modules/mongodb/index.js",
  "domain-no-io-workspace-package: services/conversation/src/domain/publishes.ts → packages/kafka/src/index.ts",
  "domain-imports-only-domain: services/conversation/src/domain/stores.ts → services/conversation/src/adapters/store.ts",
  "domain-imports-only-domain: services/conversation/src/domain/configured.ts → services/conversation/src/main.ts",
  "not-to-unresolvable: services/conversation/src/adapters/missing.ts → ./nowhere.ts",
].sort();

describe("import boundaries", { timeout: 120_000 }, () => {
  let dir: string;
  let rules: Rule[];

  before(async () => {
    rules = (JSON.parse(await readFile(config, "utf8")) as { forbidden: Rule[] }).forbidden;
    dir = await mkdtemp(join(tmpdir(), "taituri-boundaries-"));
    for (const [path, text] of Object.entries(workspace)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    for (const [path, target] of Object.entries(links)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await symlink(target, join(dir, path), "dir");
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("each rule is an error and says why", () => {
    assert.ok(rules.length > 0);
    for (const rule of rules) {
      assert.equal(rule.severity, "error", rule.name);
      assert.ok((rule.comment ?? "").length > 40, `${rule.name} says why`);
    }
  });

  test("each forbidden import is reported by its rule, and the allowed ones are not", async () => {
    const result = await cruise(dir, ["services", "packages", "tests"]);
    assert.deepEqual(described(result), expected);
    const tried = new Set(result.summary.violations.map((v) => v.rule.name));
    assert.deepEqual(
      rules.map((r) => r.name).filter((name) => !tried.has(name)),
      [],
      "a rule that no forbidden import here tries",
    );
  });

  test("the tree keeps every boundary", async () => {
    const result = await cruise(root, ["services", "packages"]);
    assert.deepEqual(described(result), []);
    // The rules go by resolved path, so the workspace packages must resolve into the tree, as
    // they did in the temp workspace: every service's main.ts was read, and @taituri/proto is
    // packages/proto.
    const sources = new Set(result.modules.map((m) => m.source));
    for (const service of ["conversation", "generation", "ingress", "limiter", "payment"]) {
      assert.ok(sources.has(`services/${service}/src/main.ts`), service);
    }
    const proto = result.modules.flatMap((m) => m.dependencies).find((d) => d.module === "@taituri/proto");
    assert.equal(proto?.resolved, "packages/proto/src/index.ts");
  });
});

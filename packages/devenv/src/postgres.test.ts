// A real PostgreSQL from Debian's packages, started the way FerretDB gets it. Fails (never skips)
// when it cannot be provisioned.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { resolveCacheDir } from "./cache.ts";
import { openLocalRun } from "./local.ts";
import { provisionPostgres, type StartedPostgres, startLocalPostgres } from "./postgres.ts";
import { run } from "./util.ts";

let postgres: StartedPostgres | undefined;
let cleanup: (() => Promise<void>) | undefined;
let psql: (sql: string) => Promise<string>;

before(
  async () => {
    const cacheDir = resolveCacheDir(undefined, process.env);
    const log = () => {};
    const install = await provisionPostgres({ cacheDir, log });
    const local = await openLocalRun({
      cacheDir,
      log,
      persist: false,
      readyTimeoutMs: 60_000,
      label: "pgtest",
    });
    cleanup = local.cleanup;
    postgres = await startLocalPostgres(local.ctx, install);
    const url = new URL(postgres.url);
    psql = async (sql) =>
      (
        await run(join(install.binDir, "psql"), [
          "-X",
          "-A",
          "-t",
          "-v",
          "ON_ERROR_STOP=1",
          "-h",
          url.hostname,
          "-p",
          url.port,
          "-U",
          "taituri",
          "-d",
          "postgres",
          "-c",
          sql,
        ])
      ).stdout.trim();
  },
  { timeout: 5 * 60_000 },
);
after(async () => {
  await postgres?.stop();
  await cleanup?.();
});

test("a table shaped like FerretDB's gets an _id index that its prepared lookups use", async () => {
  // What FerretDB 1.24 creates per collection, and how it looks a document up by _id: the field
  // name is a parameter, and the statement is prepared (so reused) by its driver.
  await psql(`
    CREATE SCHEMA shop;
    CREATE TABLE shop.conversations (_jsonb jsonb);
    CREATE UNIQUE INDEX conversations_id ON shop.conversations ((_jsonb->'_id'));
    INSERT INTO shop.conversations SELECT jsonb_build_object('_id', 'c' || g, 'pad', repeat('x', 500))
      FROM generate_series(1, 5000) g;`);
  assert.match(
    await psql(
      "SELECT indexdef FROM pg_indexes WHERE schemaname = 'shop' AND indexname LIKE 'taituri_id_gin_%'",
    ),
    /USING gin \(\(\(_jsonb -> '_id'::text\)\)\) WITH \(fastupdate='?off'?\)/,
  );
  const plan = await psql(`
    PREPARE lookup(text, jsonb) AS SELECT _jsonb FROM shop.conversations WHERE _jsonb->$1 @> $2;
    EXECUTE lookup('_id', '"c1"'); EXECUTE lookup('_id', '"c2"'); EXECUTE lookup('_id', '"c3"');
    EXECUTE lookup('_id', '"c4"'); EXECUTE lookup('_id', '"c5"'); EXECUTE lookup('_id', '"c6"');
    EXPLAIN EXECUTE lookup('_id', '"c4999"');`);
  assert.match(plan, /Index Scan on taituri_id_gin_/, plan);
  assert.doesNotMatch(plan, /Seq Scan/, plan);
  // A generic plan could not use it (the key is a parameter); PostgreSQL may pick one after five
  // runs, as it did under the conversation benchmark, unless told not to.
  assert.equal(await psql("SHOW plan_cache_mode"), "force_custom_plan");
});

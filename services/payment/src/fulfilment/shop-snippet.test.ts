import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { signBody } from "./signature.ts";

/**
 * The verification snippet shops copy from docs/orders.md ("## Verifying the signature"), where
 * the README sends them, is run as they would run it: extracted, written to a .mjs file and
 * imported by plain Node, then given what the deliverer signs. An edit that breaks it fails here.
 */
type Verify = (
  rawBody: Buffer | string,
  header: string,
  secret: string,
  toleranceSeconds?: number,
) => boolean;

/** The shops' snippet, imported from a temporary module. */
async function importShopSnippet(dir: string): Promise<Verify> {
  const readme = await readFile(new URL("../../../../docs/orders.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n## Verifying the signature\n");
  assert.ok(start >= 0, 'docs/orders.md has no "## Verifying the signature" section');
  const next = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, next < 0 ? undefined : next);
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'no ```js block under "## Verifying the signature"');
  const file = join(dir, "verify.mjs");
  await writeFile(file, code);
  const module = (await import(pathToFileURL(file).href)) as { verifyTaituriSignature?: Verify };
  assert.equal(
    typeof module.verifyTaituriSignature,
    "function",
    "the snippet exports verifyTaituriSignature",
  );
  return module.verifyTaituriSignature as Verify;
}

const SECRET = "shop-secret-0123456789abcdef0123456789";
let dir = "";
let verify: Verify;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "shop-snippet-"));
  verify = await importShopSnippet(dir);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const body = Buffer.from(
  JSON.stringify({ id: "order.paid:7KQ2-M9XD", type: "order.paid", data: { order: {} } }),
);
const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);

test("the snippet accepts what the deliverer signs, as bytes or as text", () => {
  assert.equal(verify(body, signBody(body, [SECRET], new Date()), SECRET), true);
  assert.equal(verify(body.toString("utf8"), signBody(body, [SECRET], new Date()), SECRET), true);
  // A rotation: two v1 entries, either secret verifies.
  const other = "shop-secret-new-0123456789abcdef012345";
  assert.equal(verify(body, signBody(body, [other, SECRET], new Date()), SECRET), true);
});

test("the README sends shops to that snippet", async () => {
  const readme = await readFile(new URL("../../../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n## Receiving orders\n");
  assert.match(readme.slice(start, readme.indexOf("\n## ", start + 1)), /\(docs\/orders\.md\)/);
});

test("it refuses a replay older than the tolerance, a changed byte, another secret and junk", () => {
  assert.equal(verify(body, signBody(body, [SECRET], ago(301)), SECRET), false);
  assert.equal(verify(body, signBody(body, [SECRET], ago(290)), SECRET), true);
  assert.equal(verify(body, signBody(body, [SECRET], ago(60)), SECRET, 30), false);
  const changed = Buffer.from(body);
  changed[10] = (changed[10] ?? 0) ^ 1;
  assert.equal(verify(changed, signBody(body, [SECRET], new Date()), SECRET), false);
  assert.equal(verify(body, signBody(body, [SECRET], new Date()), `${SECRET}x`), false);
  for (const header of ["", "t=,v1=", "v1=00", `t=${Math.floor(Date.now() / 1000)}`, "t=abc,v1=zz"])
    assert.equal(verify(body, header, SECRET), false, header);
});

import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** The shops' verifier (docs/orders.md): true for a body the shop may trust, false otherwise. */
export type ShopVerifier = (
  rawBody: Buffer | string,
  header: string,
  secret: string,
  toleranceSeconds?: number,
) => boolean;

/**
 * The verification snippet the README sends shops to (docs/orders.md, "## Verifying the
 * signature"), as a shop runs it: the ```js block extracted, written to a .mjs file and imported by
 * plain Node. An edit that breaks it fails the tests that use it.
 */
export async function shopVerifier(): Promise<ShopVerifier> {
  const readme = await readFile(new URL("../../../docs/orders.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n## Verifying the signature\n");
  const next = readme.indexOf("\n## ", start + 1);
  const code = /```js\n([\s\S]*?)```/.exec(readme.slice(start, next < 0 ? undefined : next))?.[1];
  assert.ok(start >= 0 && code, 'docs/orders.md has a ```js block under "## Verifying the signature"');
  const file = join(await mkdtemp(join(tmpdir(), "readme-verifier-")), "verify.mjs");
  await writeFile(file, code);
  const verify = (await import(pathToFileURL(file).href)).verifyTaituriSignature;
  assert.equal(typeof verify, "function", "the snippet exports verifyTaituriSignature");
  return verify as ShopVerifier;
}

/**
 * What an attacker who captured a delivery could try: the same body and header replayed later than
 * the tolerance (the clock moved on, as it would be), and the body with one byte changed. The
 * shops' verifier must refuse both.
 */
export function assertRefusesTampering(
  verify: ShopVerifier,
  delivery: { body: Buffer; signature: string },
  secret: string,
  toleranceSeconds = 300,
): void {
  assert.equal(verify(delivery.body, delivery.signature, secret), true, "the genuine delivery verifies");
  const changed = Buffer.from(delivery.body);
  const at = changed.indexOf("order.paid:") + "order.paid:".length;
  changed[at] = (changed[at] ?? 0) ^ 1;
  assert.equal(verify(changed, delivery.signature, secret), false, "a body changed by one byte is refused");
  const now = Date.now;
  Date.now = () => now() + (toleranceSeconds + 1) * 1000;
  try {
    assert.equal(
      verify(delivery.body, delivery.signature, secret),
      false,
      "a replay after the tolerance is refused",
    );
  } finally {
    Date.now = now;
  }
}

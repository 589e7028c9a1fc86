import assert from "node:assert/strict";
import { test } from "node:test";
import { createDesignUrls, designSignature } from "./design-url.ts";

const SECRET = "design-link-secret-0123456789abcdef0123";
const designs = createDesignUrls({ secret: SECRET, ttlSeconds: 600, publicUrl: () => "https://pay.example" });
const at = new Date(1_800_000_000_000);
const parts = (url: string) => {
  const u = new URL(url);
  return {
    number: decodeURIComponent(u.pathname.split("/")[2] ?? ""),
    expires: u.searchParams.get("expires") ?? undefined,
    signature: u.searchParams.get("signature") ?? undefined,
  };
};

test("a link names the order, its expiry and the HMAC of both, and works until it expires", () => {
  const { url, expiresAt } = designs.make("7KQ2-M9XD", at);
  assert.equal(expiresAt.getTime(), at.getTime() + 600_000);
  assert.equal(
    url,
    `https://pay.example/orders/7KQ2-M9XD/design?expires=1800000600&signature=${designSignature("7KQ2-M9XD", 1_800_000_600, SECRET)}`,
  );
  const p = parts(url);
  assert.equal(designs.verify(p.number, p.expires, p.signature, at), true);
  assert.equal(designs.verify(p.number, p.expires, p.signature, new Date(at.getTime() + 599_000)), true);
  assert.equal(designs.verify(p.number, p.expires, p.signature, new Date(at.getTime() + 600_000)), false);
});

test("another order, a later expiry, another key or a malformed part: refused", () => {
  const p = parts(designs.make("7KQ2-M9XD", at).url);
  assert.equal(designs.verify("7KQ2-M9XE", p.expires, p.signature, at), false);
  assert.equal(designs.verify(p.number, "1900000000", p.signature, at), false);
  const other = createDesignUrls({ secret: `${SECRET}x`, ttlSeconds: 600, publicUrl: () => "" });
  assert.equal(other.verify(p.number, p.expires, p.signature, at), false);
  assert.equal(designs.verify(p.number, undefined, p.signature, at), false);
  assert.equal(designs.verify(p.number, p.expires, undefined, at), false);
  assert.equal(designs.verify(p.number, "-1", p.signature, at), false);
  assert.equal(designs.verify(p.number, p.expires, "zz", at), false);
  assert.equal(designs.verify(p.number, p.expires, p.signature?.toUpperCase(), at), false);
});

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { checkSignature } from "./signature.ts";

const body = Buffer.from('{"object":"whatsapp_business_account","entry":[]}');
const sign = (secret: string, payload: Buffer = body) =>
  `sha256=${createHmac("sha256", secret).update(payload).digest("hex")}`;

test("a body signed with the app secret is valid", () => {
  assert.equal(checkSignature(body, sign("s3cret"), ["s3cret"]), "valid");
});

test("either secret is accepted during a rotation", () => {
  assert.equal(checkSignature(body, sign("old"), ["new", "old"]), "valid");
  assert.equal(checkSignature(body, sign("new"), ["new", "old"]), "valid");
});

test("uppercase hex is accepted (HMAC hex case is not significant)", () => {
  assert.equal(checkSignature(body, sign("s").toUpperCase().replace("SHA256=", "sha256="), ["s"]), "valid");
});

test("missing, malformed and wrong signatures are told apart", () => {
  assert.equal(checkSignature(body, undefined, ["s"]), "missing");
  assert.equal(checkSignature(body, "", ["s"]), "missing");
  assert.equal(checkSignature(body, "sha1=abc", ["s"]), "malformed");
  assert.equal(checkSignature(body, `sha256=${"0".repeat(63)}`, ["s"]), "malformed");
  assert.equal(checkSignature(body, sign("other"), ["s"]), "mismatch");
});

test("one changed byte of the body breaks the signature", () => {
  const tampered = Buffer.from(body);
  tampered[5] = tampered[5] === 0x41 ? 0x42 : 0x41;
  assert.equal(checkSignature(tampered, sign("s"), ["s"]), "mismatch");
});

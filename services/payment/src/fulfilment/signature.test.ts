import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import { signBody, verifyBody } from "./signature.ts";

const SECRET = "shop-secret-0123456789abcdef0123456789";
const OLD = "shop-secret-old-0123456789abcdef012345";
const body = Buffer.from('{"id":"order.paid:7KQ2-M9XD","type":"order.paid"}');
const at = new Date(1_800_000_000_000);
const seconds = (s: number) => new Date(at.getTime() + s * 1000);

describe("Taituri-Signature", () => {
  test("is Stripe's scheme: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>", () => {
    const mac = createHmac("sha256", SECRET).update(`1800000000.${body.toString()}`).digest("hex");
    assert.equal(signBody(body, [SECRET], at), `t=1800000000,v1=${mac}`);
  });

  test("verifies within the tolerance, either side of now", () => {
    const header = signBody(body, [SECRET], at);
    assert.equal(verifyBody(body, header, [SECRET], at), true);
    assert.equal(verifyBody(body, header, [SECRET], seconds(300)), true);
    assert.equal(verifyBody(body, header, [SECRET], seconds(-300)), true);
  });

  test("a replay past the tolerance, a changed byte, another secret or no header: refused", () => {
    const header = signBody(body, [SECRET], at);
    assert.equal(verifyBody(body, header, [SECRET], seconds(301)), false);
    assert.equal(verifyBody(body, header, [SECRET], seconds(-301)), false);
    const changed = Buffer.from(body);
    changed[5] = (changed[5] ?? 0) ^ 1;
    assert.equal(verifyBody(changed, header, [SECRET], at), false);
    assert.equal(verifyBody(body, header, [OLD], at), false);
    assert.equal(verifyBody(body, undefined, [SECRET], at), false);
    assert.equal(verifyBody(body, "garbage", [SECRET], at), false);
    assert.equal(verifyBody(body, header, [], at), false);
  });

  test("rotation: signed with two secrets, it verifies with either; a call signed with either is accepted", () => {
    const header = signBody(body, [SECRET, OLD], at);
    assert.match(header, /^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    assert.equal(verifyBody(body, header, [SECRET], at), true);
    assert.equal(verifyBody(body, header, [OLD], at), true);
    assert.equal(verifyBody(body, signBody(body, [OLD], at), [SECRET, OLD], at), true);
  });

  test("the timestamp is inside the MAC: moving it breaks the signature", () => {
    const header = signBody(body, [SECRET], at).replace("t=1800000000", "t=1800000100");
    assert.equal(verifyBody(body, header, [SECRET], seconds(100)), false);
  });
});

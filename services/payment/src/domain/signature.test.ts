import assert from "node:assert/strict";
import { describe, test } from "node:test";
import Stripe from "stripe";
import { signPayload, verifySignature } from "./signature.ts";

const SECRET = "whsec_test_secret_for_unit_tests";
const body = Buffer.from('{"id":"evt_1","type":"checkout.session.completed"}');
const now = 1_800_000_000;
const check = (header: string | undefined, at = now, secret = SECRET, payload = body) =>
  verifySignature(payload, header, secret, { toleranceSeconds: 300, nowSeconds: at });

describe("webhook signatures (Stripe's scheme)", () => {
  test("a signature made now verifies", () => {
    assert.deepEqual(check(signPayload(body, SECRET, now)), { ok: true });
  });

  test("Stripe's own test header verifies: the scheme is Stripe's", () => {
    const header = new Stripe("sk_test_x").webhooks.generateTestHeaderString({
      payload: body.toString(),
      secret: SECRET,
      timestamp: now,
    });
    assert.deepEqual(check(header), { ok: true });
    // And Stripe's verifier accepts ours.
    const ours = signPayload(body, SECRET, Math.floor(Date.now() / 1000));
    assert.equal(new Stripe("sk_test_x").webhooks.constructEvent(body, ours, SECRET).id, "evt_1");
  });

  test("another secret, a changed body or a changed timestamp: mismatch", () => {
    assert.deepEqual(check(signPayload(body, "another-secret", now)), { ok: false, reason: "mismatch" });
    assert.deepEqual(check(signPayload(body, SECRET, now), now, SECRET, Buffer.from(`${body} `)), {
      ok: false,
      reason: "mismatch",
    });
    const header = signPayload(body, SECRET, now).replace(`t=${now}`, `t=${now + 1}`);
    assert.deepEqual(check(header), { ok: false, reason: "mismatch" });
  });

  test("outside the tolerance window either way: stale", () => {
    assert.deepEqual(check(signPayload(body, SECRET, now - 301)), { ok: false, reason: "stale" });
    assert.deepEqual(check(signPayload(body, SECRET, now + 301)), { ok: false, reason: "stale" });
    assert.deepEqual(check(signPayload(body, SECRET, now - 300)), { ok: true });
  });

  test("missing or malformed headers are refused", () => {
    assert.deepEqual(check(undefined), { ok: false, reason: "missing" });
    assert.deepEqual(check("v1=abc"), { ok: false, reason: "malformed" });
    assert.deepEqual(check(`t=${now}`), { ok: false, reason: "malformed" });
    assert.deepEqual(check(`t=${now},v1=${"0".repeat(63)}`), { ok: false, reason: "malformed" });
  });

  test("several v1 entries (a rotated secret): any match verifies", () => {
    const good = signPayload(body, SECRET, now).split("v1=")[1];
    assert.deepEqual(check(`t=${now},v1=${"a".repeat(64)},v1=${good}`), { ok: true });
  });
});

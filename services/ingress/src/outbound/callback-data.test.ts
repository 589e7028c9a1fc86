import assert from "node:assert/strict";
import { test } from "node:test";
import { CallbackData } from "./callback-data.ts";

test("a sealed outbound id opens to itself under the same key, and shows nothing of it", () => {
  const sealer = new CallbackData("a-deployment-pseudonym-key");
  const id = "payment:PN1:US.13491208655302741918/o1:succeeded:0";
  const sealed = sealer.seal(id);
  assert.equal(sealer.open(sealed), id);
  assert.ok(!sealed.includes("US.") && !sealed.includes("PN1"), sealed);
  assert.ok(sealed.length <= 512);
  // A fresh IV each time: two sends of one id do not look alike.
  assert.notEqual(sealer.seal(id), sealed);
});

test("anything not sealed under this key opens to nothing", () => {
  const sealer = new CallbackData("a-deployment-pseudonym-key");
  const sealed = sealer.seal("out-1");
  assert.equal(new CallbackData("another-key-entirely").open(sealed), undefined);
  const tampered = Buffer.from(sealed, "base64url");
  tampered[14] = (tampered[14] ?? 0) ^ 1;
  assert.equal(sealer.open(tampered.toString("base64url")), undefined);
  for (const other of ["", "out-1", "x".repeat(80), "%%%"]) assert.equal(sealer.open(other), undefined);
});

test("every seal has its own IV, across refills of the IV pool, and opens", () => {
  const sealer = new CallbackData("a-deployment-pseudonym-key");
  const ivs = new Set<string>();
  // 1,000 seals: the pool of 256 IVs is refilled three times.
  for (let i = 0; i < 1000; i++) {
    const sealed = sealer.seal(`out-${i}`);
    ivs.add(Buffer.from(sealed, "base64url").subarray(0, 12).toString("hex"));
    assert.equal(sealer.open(sealed), `out-${i}`);
  }
  assert.equal(ivs.size, 1000);
});

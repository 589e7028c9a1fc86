import assert from "node:assert/strict";
import { test } from "node:test";
import { configProblems } from "@taituri/config";
import { loadPaymentConfig } from "./config.ts";

test("the public port and the ops port have defaults of their own", () => {
  const config = loadPaymentConfig({});
  assert.equal(config.PAYMENT_PORT, 3003);
  assert.equal(config.PAYMENT_OPS_PORT, 3103);
  assert.equal(loadPaymentConfig({ PAYMENT_OPS_PORT: "9103" }).PAYMENT_OPS_PORT, 9103);
});

test("an ops port that is not a port, or is PAYMENT_PORT's, is refused naming it", () => {
  for (const value of ["70000", "-1", "ops"])
    assert.deepEqual(
      configProblems(() => loadPaymentConfig({ PAYMENT_OPS_PORT: value })).map((p) =>
        p.slice(0, p.indexOf(":")),
      ),
      ["PAYMENT_OPS_PORT"],
      value,
    );
  assert.deepEqual(
    configProblems(() => loadPaymentConfig({ PAYMENT_PORT: "8080", PAYMENT_OPS_PORT: "8080" })),
    [
      "PAYMENT_OPS_PORT: must differ from PAYMENT_PORT (8080): the ops endpoints have a listener of their own",
    ],
  );
  assert.deepEqual(
    configProblems(() => loadPaymentConfig({ PAYMENT_OPS_PORT: "3003" })),
    [
      "PAYMENT_OPS_PORT: must differ from PAYMENT_PORT (3003): the ops endpoints have a listener of their own",
    ],
  );
  // Any free port for each, as tests ask.
  assert.equal(loadPaymentConfig({ PAYMENT_PORT: "0", PAYMENT_OPS_PORT: "0" }).PAYMENT_OPS_PORT, 0);
});

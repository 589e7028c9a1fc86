import assert from "node:assert/strict";
import { test } from "node:test";
import { configProblems } from "@taituri/config";
import { loadIngressConfig, roleSetting } from "./config.ts";

const required = { WHATSAPP_APP_SECRET: "old, new", WHATSAPP_VERIFY_TOKEN: "v", WHATSAPP_ACCESS_TOKEN: "t" };

test("defaults match the documented contract, and several app secrets are accepted", () => {
  const config = loadIngressConfig(required);
  assert.equal(config.INGRESS_PORT, 3000);
  assert.equal(config.INGRESS_OPS_PORT, 3100);
  assert.equal(config.WHATSAPP_API_URL, "https://graph.facebook.com/v23.0");
  assert.deepEqual(config.WHATSAPP_APP_SECRET, ["old", "new"]);
  assert.equal(config.WEBHOOK_BODY_LIMIT_BYTES, 3 * 1024 * 1024);
});

test("missing secrets fail start-up naming each variable", () => {
  assert.deepEqual(
    configProblems(() => loadIngressConfig({}))
      .filter((p) => p.startsWith("WHATSAPP"))
      .sort(),
    [
      "WHATSAPP_ACCESS_TOKEN: required with INGRESS_ROLE=all",
      "WHATSAPP_APP_SECRET: required with INGRESS_ROLE=all",
      "WHATSAPP_VERIFY_TOKEN: required with INGRESS_ROLE=all",
    ],
  );
});

test("each role requires its own secrets and none of the other's", () => {
  assert.deepEqual(configProblems(() => loadIngressConfig({ INGRESS_ROLE: "webhook" })).sort(), [
    "WHATSAPP_APP_SECRET: required with INGRESS_ROLE=webhook",
    "WHATSAPP_VERIFY_TOKEN: required with INGRESS_ROLE=webhook",
  ]);
  assert.deepEqual(
    configProblems(() => loadIngressConfig({ INGRESS_ROLE: "dispatcher" })),
    ["WHATSAPP_ACCESS_TOKEN: required with INGRESS_ROLE=dispatcher"],
  );
  const webhook = loadIngressConfig({
    INGRESS_ROLE: "webhook",
    WHATSAPP_APP_SECRET: "s",
    WHATSAPP_VERIFY_TOKEN: "v",
  });
  assert.equal(webhook.WHATSAPP_ACCESS_TOKEN, undefined);
  assert.throws(
    () => roleSetting(webhook, "WHATSAPP_ACCESS_TOKEN"),
    /WHATSAPP_ACCESS_TOKEN is required with INGRESS_ROLE=webhook/,
  );
  assert.equal(
    roleSetting(
      loadIngressConfig({ INGRESS_ROLE: "dispatcher", WHATSAPP_ACCESS_TOKEN: "t" }),
      "WHATSAPP_ACCESS_TOKEN",
    ),
    "t",
  );
  assert.equal(loadIngressConfig(required).INGRESS_ROLE, "all");
  assert.match(
    configProblems(() => loadIngressConfig({ ...required, INGRESS_ROLE: "both" })).join(),
    /INGRESS_ROLE/,
  );
});

test("the old OUTBOUND_DISPATCHER flag is refused, naming what replaced it", () => {
  assert.deepEqual(
    configProblems(() => loadIngressConfig({ ...required, OUTBOUND_DISPATCHER: "false" })),
    ["OUTBOUND_DISPATCHER: replaced by INGRESS_ROLE (webhook, dispatcher or all): unset it"],
  );
});

test("a trailing slash on the Graph API URL is dropped; a bad URL is refused", () => {
  assert.equal(
    loadIngressConfig({ ...required, WHATSAPP_API_URL: "http://sim:3900/" }).WHATSAPP_API_URL,
    "http://sim:3900",
  );
  assert.throws(() => loadIngressConfig({ ...required, WHATSAPP_API_URL: "not a url" }), /WHATSAPP_API_URL/);
});

test("the dispatcher's claims and sent records have spacings of their own; a negative one is refused", () => {
  const config = loadIngressConfig(required);
  assert.equal(config.OUTBOUND_CLAIM_INTERVAL_MS, 5);
  assert.equal(config.OUTBOUND_RECORD_INTERVAL_MS, 10);
  assert.equal(
    loadIngressConfig({ ...required, OUTBOUND_RECORD_INTERVAL_MS: "0" }).OUTBOUND_RECORD_INTERVAL_MS,
    0,
  );
  assert.throws(
    () => loadIngressConfig({ ...required, OUTBOUND_CLAIM_INTERVAL_MS: "-1" }),
    /OUTBOUND_CLAIM_INTERVAL_MS/,
  );
});

test("a claim's lease shorter than a send and its resend is refused", () => {
  assert.throws(
    () => loadIngressConfig({ ...required, GRAPH_API_TIMEOUT_MS: "30000" }),
    /OUTBOUND_CLAIM_LEASE_MS: must be more than twice GRAPH_API_TIMEOUT_MS/,
  );
  assert.equal(
    loadIngressConfig({ ...required, GRAPH_API_TIMEOUT_MS: "20000", OUTBOUND_CLAIM_LEASE_MS: "45000" })
      .OUTBOUND_CLAIM_LEASE_MS,
    45_000,
  );
});

test("the ops port is a port number of its own: an invalid one or INGRESS_PORT's is refused", () => {
  assert.equal(loadIngressConfig({ ...required, INGRESS_OPS_PORT: "9100" }).INGRESS_OPS_PORT, 9100);
  assert.deepEqual(
    configProblems(() => loadIngressConfig({ ...required, INGRESS_OPS_PORT: "70000" })).map((p) =>
      p.slice(0, p.indexOf(":")),
    ),
    ["INGRESS_OPS_PORT"],
  );
  assert.deepEqual(
    configProblems(() => loadIngressConfig({ ...required, INGRESS_PORT: "8080", INGRESS_OPS_PORT: "8080" })),
    [
      "INGRESS_OPS_PORT: must differ from INGRESS_PORT (8080): the ops endpoints have a listener of their own",
    ],
  );
  assert.deepEqual(
    configProblems(() => loadIngressConfig({ ...required, INGRESS_OPS_PORT: "3000" })),
    [
      "INGRESS_OPS_PORT: must differ from INGRESS_PORT (3000): the ops endpoints have a listener of their own",
    ],
  );
  // Any free port for each, as tests ask.
  const anyFree = loadIngressConfig({ ...required, INGRESS_PORT: "0", INGRESS_OPS_PORT: "0" });
  assert.equal(anyFree.INGRESS_OPS_PORT, 0);
});

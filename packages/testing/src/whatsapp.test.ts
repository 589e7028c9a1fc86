import assert from "node:assert/strict";
import { test } from "node:test";
import { statusWebhook, textWebhook } from "./whatsapp.ts";

const changeValue = (body: { entry: { changes: { value: unknown }[] }[] }) =>
  body.entry[0]?.changes[0]?.value as {
    contacts?: Record<string, unknown>[];
    messages?: Record<string, unknown>[];
    statuses?: Record<string, unknown>[];
  };

test("webhooks name the shopper as Meta does: phone number, BSUID, or both", () => {
  const legacy = changeValue(textWebhook("hi"));
  assert.equal(legacy.messages?.[0]?.from, "15550001111");
  assert.equal("from_user_id" in (legacy.messages?.[0] ?? {}), false);
  assert.equal("user_id" in (legacy.contacts?.[0] ?? {}), false);

  const bsuidOnly = changeValue(textWebhook("hi", { userId: "US.1" }));
  assert.equal("from" in (bsuidOnly.messages?.[0] ?? {}), false);
  assert.equal(bsuidOnly.messages?.[0]?.from_user_id, "US.1");
  assert.equal("wa_id" in (bsuidOnly.contacts?.[0] ?? {}), false);
  assert.equal(bsuidOnly.contacts?.[0]?.user_id, "US.1");

  const both = changeValue(textWebhook("hi", { waId: "447700900001", userId: "US.1" }));
  assert.deepEqual([both.messages?.[0]?.from, both.messages?.[0]?.from_user_id], ["447700900001", "US.1"]);
  assert.deepEqual([both.contacts?.[0]?.wa_id, both.contacts?.[0]?.user_id], ["447700900001", "US.1"]);
});

test("statuses carry recipient_id and recipient_user_id for the ids the shopper has", () => {
  const bsuidOnly = changeValue(statusWebhook("wamid.1", "read", { userId: "US.1" }));
  assert.equal("recipient_id" in (bsuidOnly.statuses?.[0] ?? {}), false);
  assert.equal(bsuidOnly.statuses?.[0]?.recipient_user_id, "US.1");
  assert.deepEqual(bsuidOnly.contacts, [{ user_id: "US.1" }]);
  const failed = changeValue(statusWebhook("wamid.1", "failed", { waId: "447700900001", userId: "US.1" }));
  assert.equal(failed.contacts, undefined, "Meta sends no contacts with a failed status");
  assert.equal(failed.statuses?.[0]?.recipient_id, "447700900001");
});

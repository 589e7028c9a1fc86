import assert from "node:assert/strict";
import { test } from "node:test";
import { inbound } from "@taituri/proto";
import { messageWebhook, statusWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { parseWebhook } from "./webhook.ts";

const at = new Date("2026-11-30T10:00:00Z");
const one = (json: unknown) => {
  const { events, unreadable } = parseWebhook(json, at);
  assert.deepEqual(unreadable, []);
  assert.equal(events.length, 1);
  return events[0] as inbound.InboundEvent;
};
const messageOf = (event: inbound.InboundEvent) => {
  assert.equal(event.payload?.$case, "message");
  return event.payload.value as inbound.Message;
};
const statusOf = (event: inbound.InboundEvent) => {
  assert.equal(event.payload?.$case, "status");
  return event.payload.value as inbound.Status;
};

test("a text message becomes one event keyed by business number and shopper", () => {
  const event = one(
    textWebhook("I want a gift", {
      wamid: "wamid.A",
      waId: "447700900123",
      phoneNumberId: "PN1",
      timestamp: 1700000000,
    }),
  );
  assert.equal(event.eventId, "wamid.A");
  assert.equal(event.conversationId, "PN1:447700900123");
  assert.equal(event.business?.phoneNumberId, "PN1");
  assert.equal(event.receivedAt?.getTime(), at.getTime());
  const message = messageOf(event);
  assert.deepEqual(message.content, { $case: "text", value: { body: "I want a gift" } });
  assert.equal(message.from?.waId, "447700900123");
  assert.equal(message.from?.profileName, "Ana");
  assert.equal(message.sentAt?.getTime(), 1700000000_000);
});

test("a shopper known only by the business-scoped user id (no from, no wa_id) is keyed by it", () => {
  const event = one(textWebhook("hola", { userId: "US.99", profileName: "Bo", wamid: "wamid.B" }));
  assert.equal(event.conversationId, "106540352242922:US.99");
  assert.deepEqual(messageOf(event).from, { waId: "", userId: "US.99", profileName: "Bo" });
});

test("a shopper with a phone number and a BSUID is keyed by the BSUID and carries both", () => {
  const event = one(textWebhook("hi", { waId: "447700900123", userId: "GB.5501", phoneNumberId: "PN1" }));
  assert.equal(event.conversationId, "PN1:GB.5501");
  assert.deepEqual(messageOf(event).from, { waId: "447700900123", userId: "GB.5501", profileName: "Ana" });
});

test("without from_user_id, the BSUID contacts gives for the sender's number is the key", () => {
  const json = textWebhook("hi", { waId: "447700900123", userId: "GB.5501", phoneNumberId: "PN1" });
  const value = json.entry[0]?.changes[0]?.value as { messages: Record<string, unknown>[] };
  delete value.messages[0]?.from_user_id;
  const event = one(json);
  assert.equal(event.conversationId, "PN1:GB.5501");
  assert.equal(messageOf(event).from?.userId, "GB.5501");
});

test("a shopper whose phone number comes and goes in alternate webhooks stays one conversation", () => {
  const ids = [true, false, true, false].map((withPhone, i) => {
    const event = one(
      textWebhook(`message ${i}`, {
        ...(withPhone ? { waId: "447700900123" } : {}),
        userId: "GB.5501",
        phoneNumberId: "PN1",
      }),
    );
    assert.equal(messageOf(event).from?.waId, withPhone ? "447700900123" : "");
    return event.conversationId;
  });
  assert.deepEqual(new Set(ids), new Set(["PN1:GB.5501"]));
});

test("a shopper with a phone number only (webhooks before BSUIDs) is keyed by the number", () => {
  const event = one(textWebhook("hi", { waId: "447700900123", phoneNumberId: "PN1" }));
  assert.equal(event.conversationId, "PN1:447700900123");
  assert.deepEqual(messageOf(event).from, { waId: "447700900123", userId: "", profileName: "Ana" });
});

test("a number change is a system message from the old identity, with the new number and BSUID", () => {
  const changed = (system: Record<string, unknown>, sender: { from?: string; from_user_id?: string }) =>
    messageOf(
      one({
        object: "whatsapp_business_account",
        entry: [
          {
            id: "WABA",
            changes: [
              {
                field: "messages",
                value: {
                  metadata: { phone_number_id: "PN1" },
                  messages: [{ ...sender, id: "wamid.S", timestamp: "1700000000", type: "system", system }],
                },
              },
            ],
          },
        ],
      }),
    );
  const withBsuid = changed(
    { type: "user_changed_number", body: "changed", wa_id: "447700900999", user_id: "GB.NEW1" },
    { from: "447700900123", from_user_id: "GB.OLD1" },
  );
  assert.deepEqual(withBsuid.from, { waId: "447700900123", userId: "GB.OLD1", profileName: "" });
  assert.deepEqual(withBsuid.content, {
    $case: "system",
    value: { type: "user_changed_number", body: "changed", newWaId: "447700900999", newUserId: "GB.NEW1" },
  });
  const withoutBsuid = changed(
    { type: "user_changed_number", body: "changed", wa_id: "447700900999" },
    { from: "447700900123" },
  );
  assert.deepEqual(withoutBsuid.content, {
    $case: "system",
    value: { type: "user_changed_number", body: "changed", newWaId: "447700900999", newUserId: "" },
  });
  const userIdOnly = changed(
    { type: "user_changed_user_id", body: "changed", new_user_id: "GB.NEW2" },
    { from_user_id: "GB.OLD2" },
  );
  assert.deepEqual(userIdOnly.content, {
    $case: "system",
    value: { type: "user_changed_user_id", body: "changed", newWaId: "", newUserId: "GB.NEW2" },
  });
});

test("button and list replies keep the id we set on the option", () => {
  const button = messageOf(
    one(
      messageWebhook({
        type: "interactive",
        interactive: { type: "button_reply", button_reply: { id: "s2:r1:gen", title: "Generate" } },
      }),
    ),
  );
  assert.deepEqual(button.content, {
    $case: "reply",
    value: { kind: inbound.ReplyKind.REPLY_KIND_BUTTON, id: "s2:r1:gen", title: "Generate", description: "" },
  });
  const list = messageOf(
    one(
      messageWebhook({
        type: "interactive",
        interactive: {
          type: "list_reply",
          list_reply: { id: "theme:love", title: "Love", description: "Hearts" },
        },
      }),
    ),
  );
  assert.equal(list.content?.$case, "reply");
  assert.equal((list.content.value as inbound.Reply).kind, inbound.ReplyKind.REPLY_KIND_LIST);
});

test("a voice note is media with voice set, and a reply context is kept", () => {
  const message = messageOf(
    one(
      messageWebhook({
        type: "audio",
        context: { id: "wamid.PROMPT", forwarded: true },
        audio: { id: "MEDIA1", mime_type: "audio/ogg; codecs=opus", voice: true },
      }),
    ),
  );
  assert.equal(message.contextMessageId, "wamid.PROMPT");
  assert.equal(message.forwarded, true);
  assert.deepEqual(message.content, {
    $case: "media",
    value: {
      kind: inbound.MediaKind.MEDIA_KIND_AUDIO,
      mediaId: "MEDIA1",
      mimeType: "audio/ogg; codecs=opus",
      sha256: "",
      caption: "",
      filename: "",
      voice: true,
    },
  });
});

test("a type we do not handle is kept as unsupported with Meta's errors", () => {
  const message = messageOf(
    one(messageWebhook({ type: "unsupported", errors: [{ code: 131051, title: "Message type unknown" }] })),
  );
  assert.deepEqual(message.content, {
    $case: "unsupported",
    value: {
      type: "unsupported",
      errors: [{ code: 131051, title: "Message type unknown", message: "", details: "" }],
    },
  });
});

test("a status event is keyed by the recipient and identified by message and status", () => {
  const event = one(
    statusWebhook("wamid.OUT", "failed", {
      waId: "555",
      errors: [{ code: 131047, title: "Re-engagement message" }],
    }),
  );
  assert.equal(event.eventId, "wamid.OUT:failed");
  assert.equal(event.conversationId, "106540352242922:555");
  assert.equal(event.payload?.$case, "status");
  const status = event.payload.value as inbound.Status;
  assert.equal(status.kind, inbound.StatusKind.STATUS_KIND_FAILED);
  assert.equal(status.errors[0]?.code, 131047);
});

test("a status is keyed by recipient_user_id when it has one, like the shopper's messages", () => {
  const bsuidOnly = one(statusWebhook("wamid.OUT", "delivered", { userId: "US.99", phoneNumberId: "PN1" }));
  assert.equal(bsuidOnly.conversationId, "PN1:US.99");
  assert.equal(statusOf(bsuidOnly).recipientId, "US.99");
  const both = one(
    statusWebhook("wamid.OUT", "read", { waId: "555", userId: "US.99", phoneNumberId: "PN1" }),
  );
  assert.equal(both.conversationId, "PN1:US.99");
  assert.equal(statusOf(both).recipientId, "555");
  const failed = one(
    statusWebhook("wamid.OUT", "failed", { waId: "555", userId: "US.99", phoneNumberId: "PN1" }),
  );
  assert.equal(failed.conversationId, "PN1:US.99", "failed statuses carry no contacts");
});

test("several messages in one body each become an event, in order", () => {
  const json = textWebhook("one", { wamid: "wamid.1" });
  const value = json.entry[0]?.changes[0]?.value as { messages: Record<string, unknown>[] };
  value.messages.push({ ...value.messages[0], id: "wamid.2", text: { body: "two" } });
  const { events } = parseWebhook(json, at);
  assert.deepEqual(
    events.map((e) => e.eventId),
    ["wamid.1", "wamid.2"],
  );
});

test("what cannot be read is reported, not thrown, and does not hide the rest", () => {
  assert.equal(parseWebhook({ object: "page", entry: [] }, at).unreadable.length, 1);
  assert.equal(parseWebhook("nonsense", at).unreadable.length, 1);
  const json = textWebhook("fine", { wamid: "wamid.ok" }) as { entry: { id: string; changes: unknown[] }[] };
  json.entry[0]?.changes.push({ field: "account_update", value: {} });
  json.entry[0]?.changes.push({ field: "messages", value: { metadata: {} } });
  const { events, unreadable } = parseWebhook(json, at);
  assert.deepEqual(
    events.map((e) => e.eventId),
    ["wamid.ok"],
  );
  assert.equal(unreadable.length, 2);
  assert.match(unreadable[0]?.reason ?? "", /account_update/);
  assert.match(unreadable[1]?.reason ?? "", /phone_number_id/);
});

test("every kind of webhook Meta sends is normalised (project fixtures)", async (t) => {
  const { at: valueAt, webhookFixtures } = await import("@taituri/testing/fixtures");
  for (const fixture of webhookFixtures) {
    await t.test(fixture.name, () => {
      const { events, unreadable } = parseWebhook(fixture.body, at);
      assert.deepEqual(unreadable, []);
      if (fixture.payload === "error") {
        assert.equal(events.length, 1);
        assert.match(events[0]?.eventId ?? "", /^error:[0-9a-f]{32}$/);
      } else {
        assert.deepEqual(
          events.map((e) => e.eventId),
          fixture.eventIds,
        );
      }
      const event = events[0];
      assert.equal(event?.payload?.$case, fixture.payload);
      if (fixture.conversationId) assert.equal(event?.conversationId, fixture.conversationId);
      const value = event?.payload?.value as unknown;
      if (fixture.content) assert.equal((value as inbound.Message).content?.$case, fixture.content);
      for (const [path, expected] of Object.entries(fixture.fields)) {
        assert.deepEqual(valueAt(value, path), expected, path);
      }
    });
  }
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { inbound } from "@taituri/proto";
import { messageWebhook, statusWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { deeperThan, limits, parseWebhook } from "./webhook.ts";

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

test("a status carries back the callback data its send set; anything else of that name is no callback data", () => {
  const ours = one(statusWebhook("wamid.OUT", "sent", { waId: "555", callbackData: "wamid.IN:0" }));
  assert.equal(statusOf(ours).callbackData, "wamid.IN:0");
  assert.equal(statusOf(one(statusWebhook("wamid.OUT", "sent", { waId: "555" }))).callbackData, "");
  // Another app on the account may set what it likes: the status is still read, without it.
  for (const other of [{ $gt: "" }, 42, "x".repeat(513)]) {
    const event = one(statusWebhook("wamid.OUT", "read", { waId: "555", callbackData: other }));
    assert.equal(statusOf(event).callbackData, "");
    assert.equal(statusOf(event).kind, inbound.StatusKind.STATUS_KIND_READ);
  }
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

test("a message without a type is read by the content it carries, as Meta's contacts sample is", () => {
  // Meta's reference sample of a contacts message: no `type`, the content under `contacts`.
  const contacts = messageWebhook({
    contacts: [
      {
        name: { first_name: "Chandler", last_name: "Bing", formatted_name: "Chandler Bing" },
        phones: [{ phone: "+1 555-555-5555", wa_id: "15555555555", type: "CELL" }],
      },
    ],
  });
  assert.deepEqual(messageOf(one(contacts)).content, {
    $case: "contacts",
    value: {
      contacts: [
        {
          formattedName: "Chandler Bing",
          phones: [{ phone: "+1 555-555-5555", waId: "15555555555", type: "CELL" }],
          emails: [],
        },
      ],
    },
  });
  const cases: [Record<string, unknown>, string][] = [
    [{ text: { body: "hi" } }, "text"],
    [{ image: { id: "MEDIA1", mime_type: "image/jpeg" } }, "media"],
    [{ location: { latitude: 41.39, longitude: 2.17 } }, "location"],
    [{ interactive: { type: "button_reply", button_reply: { id: "b1", title: "Yes" } } }, "reply"],
    [{ reaction: { message_id: "wamid.X", emoji: "👍" } }, "reaction"],
    [{ order: { product_items: [] } }, "order"],
    [{}, "unsupported"],
  ];
  for (const [content, expected] of cases) {
    assert.equal(messageOf(one(messageWebhook(content))).content?.$case, expected, JSON.stringify(content));
  }
  const nothing = messageOf(one(messageWebhook({ errors: [{ code: 131051, title: "Unsupported" }] })));
  assert.deepEqual(nothing.content, {
    $case: "unsupported",
    value: { type: "", errors: [{ code: 131051, title: "Unsupported", message: "", details: "" }] },
  });
});

test("a type naming a property of every object is not read as a kind of media", () => {
  for (const type of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
    assert.equal(messageOf(one(messageWebhook({ type }))).content?.$case, "unsupported", type);
  }
});

test("a timestamp outside a sane range costs its own event only, with the reason", () => {
  const ranges = [
    ["100000000000000000", /timestamp 100000000000000000 out of range/],
    ["-5", /out of range/],
    ["1000", /out of range/],
    [String(at.getTime() / 1000 + 32 * 24 * 3600), /out of range/],
    ["soon", /timestamp/],
  ] as const;
  for (const [timestamp, reason] of ranges) {
    const json = textWebhook("late", { wamid: "wamid.late" });
    const value = json.entry[0]?.changes[0]?.value as { messages: Record<string, unknown>[] };
    const [good] = value.messages;
    value.messages = [
      { ...good, id: "wamid.bad", timestamp },
      { ...good, id: "wamid.fine" },
    ];
    const { events, unreadable } = parseWebhook(json, at);
    assert.deepEqual(
      events.map((e) => e.eventId),
      ["wamid.fine"],
      timestamp,
    );
    assert.equal(unreadable.length, 1);
    assert.match(unreadable[0]?.reason ?? "", /^message wamid\.bad: /);
    assert.match(unreadable[0]?.reason ?? "", reason);
  }
  const status = statusWebhook("wamid.S", "read", { timestamp: 1e17 });
  assert.match(parseWebhook(status, at).unreadable[0]?.reason ?? "", /^status wamid\.S: timestamp/);
});

test("texts, names and lists over their bounds are refused with the field named", () => {
  const long = parseWebhook(textWebhook("x".repeat(limits.text + 1), { wamid: "wamid.long" }), at);
  assert.deepEqual(long.events, []);
  assert.match(long.unreadable[0]?.reason ?? "", /^message wamid\.long: text\.body: Too big/);
  const many = parseWebhook(
    messageWebhook({ type: "contacts", contacts: Array.from({ length: limits.items + 1 }, () => ({})) }),
    at,
  );
  assert.match(many.unreadable[0]?.reason ?? "", /contacts: Too big/);
  const id = parseWebhook(textWebhook("hi", { wamid: `wamid.${"A".repeat(limits.name)}` }), at);
  assert.match(id.unreadable[0]?.reason ?? "", /id: Too big/);
  assert.equal(one(textWebhook("x".repeat(limits.text))).eventId.startsWith("wamid."), true);
});

test("a body nested deeper than the bound is refused whole, without recursing into it", () => {
  let deep: unknown = {};
  for (let i = 0; i < 100_000; i++) deep = [deep];
  const json = textWebhook("hi");
  (json.entry[0]?.changes[0]?.value as Record<string, unknown>).extra = deep;
  assert.deepEqual(parseWebhook(json, at), {
    events: [],
    unreadable: [{ reason: `body nested deeper than ${limits.depth} levels` }],
  });
  assert.equal(deeperThan({ a: [{ b: 1 }] }, 3), false);
  assert.equal(deeperThan({ a: [{ b: {} }] }, 3), true);
  assert.equal(deeperThan("flat", 0), false);
});

test("errors of the same content get the same event id whatever else their objects carry", () => {
  const withErrors = (extra: Record<string, unknown>) => {
    const json = textWebhook("hi");
    const value = json.entry[0]?.changes[0]?.value as Record<string, unknown>;
    delete value.messages;
    value.errors = [{ code: 131000, title: "Something went wrong", ...extra }];
    return one(json).eventId;
  };
  assert.equal(withErrors({}), withErrors({ href: "https://developers.facebook.com/docs" }));
});

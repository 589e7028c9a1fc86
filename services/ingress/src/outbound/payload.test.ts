import assert from "node:assert/strict";
import { test } from "node:test";
import type { outbound } from "@taituri/proto";
import { InvalidOutboundMessage, toGraphPayload } from "./payload.ts";

const message = (overrides: Partial<outbound.OutboundMessage> = {}): outbound.OutboundMessage => ({
  id: "out-1",
  conversationId: "PN:555",
  phoneNumberId: "PN",
  to: "555",
  replyToMessageId: "",
  content: { $case: "text", value: { body: "Hello!", previewUrl: false } },
  ...overrides,
});

test("a text becomes Meta's send-message body", () => {
  assert.deepEqual(toGraphPayload(message()), {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to: "555",
    type: "text",
    text: { body: "Hello!", preview_url: false },
  });
});

test("a reply quotes the message it answers", () => {
  assert.deepEqual(toGraphPayload(message({ replyToMessageId: "wamid.IN" })).context, {
    message_id: "wamid.IN",
  });
});

test("content WhatsApp would refuse is refused with the reason", () => {
  assert.throws(() => toGraphPayload(message({ content: undefined })), /no content/);
  assert.throws(() => toGraphPayload(message({ to: "" })), InvalidOutboundMessage);
  assert.throws(
    () =>
      toGraphPayload(
        message({ content: { $case: "text", value: { body: "x".repeat(4097), previewUrl: false } } }),
      ),
    /4097 characters, over 4096/,
  );
  assert.throws(
    () => toGraphPayload(message({ content: { $case: "text", value: { body: "  ", previewUrl: false } } })),
    /empty/,
  );
});

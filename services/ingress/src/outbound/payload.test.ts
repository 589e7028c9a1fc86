import assert from "node:assert/strict";
import { test } from "node:test";
import type { outbound } from "@taituri/proto";
import { addressing, InvalidOutboundMessage, isFreeForm, toGraphPayload } from "./payload.ts";

const message = (
  content: outbound.OutboundMessage["content"],
  overrides: Partial<outbound.OutboundMessage> = {},
) => ({
  id: "out-1",
  conversationId: "PN:555",
  phoneNumberId: "PN",
  to: "555",
  recipientUserId: "",
  replyToMessageId: "",
  lastInboundAt: undefined,
  content,
  ...overrides,
});
const text = (body: string): outbound.OutboundMessage["content"] => ({
  $case: "text",
  value: { body, previewUrl: false },
});
const refused = (m: outbound.OutboundMessage, reason: RegExp) =>
  assert.throws(
    () => toGraphPayload(m),
    (error: unknown) => error instanceof InvalidOutboundMessage && reason.test(error.message),
  );

test("a text becomes Meta's send-message body; a reply quotes what it answers", () => {
  assert.deepEqual(toGraphPayload(message(text("Hello!"))), {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to: "555",
    type: "text",
    text: { body: "Hello!", preview_url: false },
  });
  // The sealed id Meta echoes in the statuses; over Meta's 512 characters it is not sent rather
  // than cut (a cut one opens to nothing).
  assert.equal(
    toGraphPayload(message(text("Hi")), { callbackData: "sealed" }).biz_opaque_callback_data,
    "sealed",
  );
  assert.equal(
    toGraphPayload(message(text("Hi")), { callbackData: "x".repeat(513) }).biz_opaque_callback_data,
    undefined,
  );
  assert.deepEqual(toGraphPayload(message(text("Hi"), { replyToMessageId: "wamid.IN" })).context, {
    message_id: "wamid.IN",
  });
});

test("a shopper with a BSUID is sent to by `recipient`, with no `to`, whether or not the number is known", () => {
  const bsuidOnly = toGraphPayload(
    message(text("Hi"), { to: "", recipientUserId: "US.13491208655302741918" }),
  );
  assert.deepEqual(bsuidOnly, {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    recipient: "US.13491208655302741918",
    type: "text",
    text: { body: "Hi", preview_url: false },
  });
  const both = toGraphPayload(message(text("Hi"), { recipientUserId: "US.1349" }));
  assert.equal(both.recipient, "US.1349");
  assert.equal("to" in both, false, "with both, Meta would use `to`");
  assert.equal(addressing(message(text("Hi"), { recipientUserId: "US.1349" })), "bsuid");
});

test("after Meta refused the BSUID, the phone number is the recipient; without one, nobody is", () => {
  const both = message(text("Hi"), { recipientUserId: "US.1349" });
  const byPhone = toGraphPayload(both, { phoneOnly: true });
  assert.equal(byPhone.to, "555");
  assert.equal("recipient" in byPhone, false);
  assert.equal(addressing(both, true), "phone");
  const bsuidOnly = message(text("Hi"), { to: "", recipientUserId: "US.1349" });
  assert.equal(addressing(bsuidOnly, true), undefined);
  assert.throws(() => toGraphPayload(bsuidOnly, { phoneOnly: true }), /no recipient/);
});

test("a phone number and a BSUID in each other's fields are refused", () => {
  refused(message(text("x"), { to: "US.1349" }), /to holds a business-scoped user id/);
  refused(message(text("x"), { recipientUserId: "447700900123" }), /recipient_user_id holds a phone number/);
});

test("text WhatsApp would refuse is refused with the reason, never cut", () => {
  refused(message(undefined), /no content/);
  refused(message(text("x"), { to: "" }), /no recipient/);
  refused(message(text("x".repeat(4097))), /text has 4097 characters, over 4096/);
  refused(message(text("  ")), /text is empty/);
});

test("an image goes by link, or by the id of the uploaded stored image", () => {
  assert.deepEqual(
    toGraphPayload(
      message({
        $case: "image",
        value: { source: { $case: "link", value: "https://cdn.example/a.png" }, caption: "A" },
      }),
    ).image,
    { link: "https://cdn.example/a.png", caption: "A" },
  );
  const stored = message({
    $case: "image",
    value: { source: { $case: "storedImageId", value: "img-1" }, caption: "" },
  });
  assert.deepEqual(toGraphPayload(stored, { mediaId: "MEDIA9" }).image, { id: "MEDIA9" });
  refused(stored, /stored image not uploaded/);
  refused(
    message({
      $case: "image",
      value: { source: { $case: "link", value: "http://insecure/a.png" }, caption: "" },
    }),
    /https/,
  );
});

test("reply buttons: at most 3, titles at most 20 characters, ids and titles distinct", () => {
  const buttons = (list: { id: string; title: string }[]): outbound.OutboundMessage["content"] => ({
    $case: "buttons",
    value: { body: "Pick one", header: "Designs", footer: "", buttons: list },
  });
  assert.deepEqual(toGraphPayload(message(buttons([{ id: "r1:pick:1", title: "Design 1" }]))).interactive, {
    type: "button",
    header: { type: "text", text: "Designs" },
    body: { text: "Pick one" },
    action: { buttons: [{ type: "reply", reply: { id: "r1:pick:1", title: "Design 1" } }] },
  });
  const four = [1, 2, 3, 4].map((i) => ({ id: `b${i}`, title: `B${i}` }));
  refused(message(buttons(four)), /4 buttons, need 1 to 3/);
  refused(
    message(buttons([{ id: "a", title: "A title that is far too long" }])),
    /button 1 title has 28 characters, over 20/,
  );
  refused(
    message(
      buttons([
        { id: "a", title: "Same" },
        { id: "b", title: "Same" },
      ]),
    ),
    /button titles repeat/,
  );
  refused(message(buttons([])), /0 buttons/);
});

test("lists: at most 10 rows, row titles at most 24 characters, sections titled when several", () => {
  const row = (i: number) => ({ id: `theme:${i}`, title: `Theme ${i}`, description: "" });
  const list = (sections: outbound.ListSection[]): outbound.OutboundMessage["content"] => ({
    $case: "list",
    value: { body: "Choose a theme", header: "", footer: "", button: "Themes", sections },
  });
  const ok = toGraphPayload(message(list([{ title: "", rows: [row(1), row(2)] }])));
  assert.deepEqual(ok.interactive, {
    type: "list",
    body: { text: "Choose a theme" },
    action: {
      button: "Themes",
      sections: [
        {
          rows: [
            { id: "theme:1", title: "Theme 1" },
            { id: "theme:2", title: "Theme 2" },
          ],
        },
      ],
    },
  });
  refused(
    message(list([{ title: "", rows: Array.from({ length: 11 }, (_, i) => row(i)) }])),
    /11 rows, need 1 to 10/,
  );
  refused(
    message(list([{ title: "", rows: [{ id: "x", title: "A row title longer than 24", description: "" }] }])),
    /row 1 title/,
  );
  refused(
    message(
      list([
        { title: "", rows: [row(1)] },
        { title: "", rows: [row(2)] },
      ]),
    ),
    /section 1 title is empty/,
  );
  refused(message(list([{ title: "", rows: [row(1), row(1)] }])), /row ids repeat/);
});

test("a CTA URL button and a template", () => {
  const cta = toGraphPayload(
    message({
      $case: "ctaUrl",
      value: { body: "Pay here", header: "", footer: "", displayText: "Pay", url: "https://pay.example/o/1" },
    }),
  );
  assert.deepEqual(cta.interactive, {
    type: "cta_url",
    body: { text: "Pay here" },
    action: { name: "cta_url", parameters: { display_text: "Pay", url: "https://pay.example/o/1" } },
  });
  refused(
    message({
      $case: "ctaUrl",
      value: { body: "b", header: "", footer: "", displayText: "Pay", url: "javascript:alert(1)" },
    }),
    /url/,
  );
  const template = message({
    $case: "template",
    value: { name: "order_ready", language: "en_US", bodyParameters: ["Ana", "#42"] },
  });
  assert.deepEqual(toGraphPayload(template).template, {
    name: "order_ready",
    language: { code: "en_US" },
    components: [
      {
        type: "body",
        parameters: [
          { type: "text", text: "Ana" },
          { type: "text", text: "#42" },
        ],
      },
    ],
  });
  refused(
    message({ $case: "template", value: { name: "Order Ready", language: "english", bodyParameters: [] } }),
    /template name.*; template language/,
  );
  assert.equal(isFreeForm(template), false);
  assert.equal(isFreeForm(message(text("hi"))), true);
});

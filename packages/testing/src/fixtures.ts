import { envelope, messageWebhook, statusWebhook } from "./whatsapp.ts";

/**
 * One webhook body per kind of thing Meta sends, in the shapes of real payloads (variants from the
 * samples in shared/whatsapp-samples: voice notes, reply context, business-scoped ids, legacy
 * error fields), each with what the ingress must make of it: the payload case, the content case
 * for messages, and a few fields that must survive normalisation.
 */
export interface WebhookFixture {
  name: string;
  body: unknown;
  /** Event ids the body must produce, in order. */
  eventIds: string[];
  /** payload.$case of the first event, and for messages content.$case. */
  payload: "message" | "status" | "error";
  content?: string;
  /** Dotted paths into the first event's payload value and their expected values. */
  fields: Record<string, unknown>;
  /** The first event's conversation id (the Kafka key), where the fixture is about whose it is. */
  conversationId?: string;
}

const shopper = { waId: "447700900001", phoneNumberId: "PN9", profileName: "Ana" };
/** A shopper Meta names by phone number and business-scoped user id (BSUID) both. */
const both = { ...shopper, waId: "447700900003", userId: "GB.1842930175512", profileName: "Cy" };
/** The BSUID Meta gives that shopper after a change of number. */
const NEW_BSUID = "GB.9920417736025";
const ts = 1700000000;
const message = (id: string, part: Record<string, unknown>) =>
  messageWebhook(part, { ...shopper, wamid: id, timestamp: ts });

export const webhookFixtures: WebhookFixture[] = [
  {
    name: "text",
    body: message("wamid.text", { type: "text", text: { body: "I want a gift" } }),
    eventIds: ["wamid.text"],
    payload: "message",
    content: "text",
    fields: {
      "content.value.body": "I want a gift",
      "from.waId": "447700900001",
      "from.userId": "",
      "from.profileName": "Ana",
    },
    conversationId: "PN9:447700900001",
  },
  {
    name: "interactive button reply, answering a prompt",
    body: message("wamid.button", {
      type: "interactive",
      context: { from: "PN9", id: "wamid.prompt" },
      interactive: { type: "button_reply", button_reply: { id: "r1:generate", title: "Generate" } },
    }),
    eventIds: ["wamid.button"],
    payload: "message",
    content: "reply",
    fields: { "content.value.id": "r1:generate", "content.value.kind": 1, contextMessageId: "wamid.prompt" },
  },
  {
    name: "interactive list reply",
    body: message("wamid.list", {
      type: "interactive",
      interactive: {
        type: "list_reply",
        list_reply: { id: "theme:birthday", title: "Birthday", description: "Cake" },
      },
    }),
    eventIds: ["wamid.list"],
    payload: "message",
    content: "reply",
    fields: {
      "content.value.id": "theme:birthday",
      "content.value.kind": 2,
      "content.value.description": "Cake",
    },
  },
  {
    name: "template quick-reply button",
    body: message("wamid.tbutton", { type: "button", button: { payload: "continue", text: "Continue" } }),
    eventIds: ["wamid.tbutton"],
    payload: "message",
    content: "reply",
    fields: { "content.value.id": "continue", "content.value.kind": 3, "content.value.title": "Continue" },
  },
  {
    name: "image with caption",
    body: message("wamid.image", {
      type: "image",
      image: { id: "M1", mime_type: "image/jpeg", sha256: "abc=", caption: "like this" },
    }),
    eventIds: ["wamid.image"],
    payload: "message",
    content: "media",
    fields: { "content.value.kind": 1, "content.value.mediaId": "M1", "content.value.caption": "like this" },
  },
  {
    name: "voice note",
    body: message("wamid.voice", {
      type: "audio",
      audio: { id: "M2", mime_type: "audio/ogg; codecs=opus", voice: true },
    }),
    eventIds: ["wamid.voice"],
    payload: "message",
    content: "media",
    fields: { "content.value.kind": 2, "content.value.voice": true },
  },
  {
    name: "forwarded video",
    body: message("wamid.video", {
      type: "video",
      context: { forwarded: true },
      video: { id: "M3", mime_type: "video/mp4", caption: "look" },
    }),
    eventIds: ["wamid.video"],
    payload: "message",
    content: "media",
    fields: { "content.value.kind": 3, forwarded: true },
  },
  {
    name: "document",
    body: message("wamid.doc", {
      type: "document",
      document: { id: "M4", mime_type: "application/pdf", filename: "list.pdf", caption: "ideas" },
    }),
    eventIds: ["wamid.doc"],
    payload: "message",
    content: "media",
    fields: { "content.value.kind": 4, "content.value.filename": "list.pdf" },
  },
  {
    name: "sticker",
    body: message("wamid.sticker", {
      type: "sticker",
      sticker: { id: "M5", mime_type: "image/webp", animated: false },
    }),
    eventIds: ["wamid.sticker"],
    payload: "message",
    content: "media",
    fields: { "content.value.kind": 5, "content.value.mediaId": "M5" },
  },
  {
    name: "location",
    body: message("wamid.location", {
      type: "location",
      location: { latitude: 51.5, longitude: -0.12, name: "Shop", address: "1 High St" },
    }),
    eventIds: ["wamid.location"],
    payload: "message",
    content: "location",
    fields: { "content.value.latitude": 51.5, "content.value.name": "Shop" },
  },
  {
    name: "contacts",
    body: message("wamid.contacts", {
      type: "contacts",
      contacts: [
        {
          name: { first_name: "Rosa", formatted_name: "Rosa Diaz" },
          phones: [{ phone: "+1 555-0100", wa_id: "15550100", type: "CELL" }],
          emails: [{ email: "rosa@example.com", type: "WORK" }],
        },
      ],
    }),
    eventIds: ["wamid.contacts"],
    payload: "message",
    content: "contacts",
    fields: {
      "content.value.contacts.0.formattedName": "Rosa Diaz",
      "content.value.contacts.0.phones.0.waId": "15550100",
      "content.value.contacts.0.emails.0": "rosa@example.com",
    },
  },
  {
    name: "reaction",
    body: message("wamid.reaction", { type: "reaction", reaction: { message_id: "wamid.out1", emoji: "❤️" } }),
    eventIds: ["wamid.reaction"],
    payload: "message",
    content: "reaction",
    fields: { "content.value.messageId": "wamid.out1", "content.value.emoji": "❤️" },
  },
  {
    name: "order from the catalog",
    body: message("wamid.order", {
      type: "order",
      order: {
        catalog_id: "CAT1",
        text: "these please",
        product_items: [
          { product_retailer_id: "mug-01", quantity: "2", item_price: "12.5", currency: "EUR" },
        ],
      },
    }),
    eventIds: ["wamid.order"],
    payload: "message",
    content: "order",
    fields: {
      "content.value.catalogId": "CAT1",
      "content.value.items.0.quantity": 2,
      "content.value.items.0.itemPrice": 12.5,
    },
  },
  {
    // The older shape: the new number in new_wa_id, and no BSUID anywhere.
    name: "system: customer changed number (legacy, no BSUID)",
    body: message("wamid.system", {
      type: "system",
      system: {
        body: "Ana changed from 447700900001 to 447700900002",
        new_wa_id: "447700900002",
        type: "user_changed_number",
      },
    }),
    eventIds: ["wamid.system"],
    payload: "message",
    content: "system",
    fields: {
      "content.value.type": "user_changed_number",
      "content.value.newWaId": "447700900002",
      "content.value.newUserId": "",
    },
    conversationId: "PN9:447700900001",
  },
  {
    name: "unsupported, legacy error fields",
    body: message("wamid.unsupported", {
      type: "unsupported",
      errors: [
        {
          code: 131051,
          title: "Unsupported message type",
          details: "Message type is not currently supported",
        },
      ],
    }),
    eventIds: ["wamid.unsupported"],
    payload: "message",
    content: "unsupported",
    fields: {
      "content.value.type": "unsupported",
      "content.value.errors.0.details": "Message type is not currently supported",
    },
  },
  {
    name: "text from a shopper known only by the business-scoped user id",
    body: envelope(
      {
        contacts: [{ profile: { name: "Bo" }, user_id: "US.77" }],
        messages: [
          {
            from_user_id: "US.77",
            id: "wamid.bsuid",
            timestamp: String(ts),
            type: "text",
            text: { body: "hi" },
          },
        ],
      },
      shopper,
    ),
    eventIds: ["wamid.bsuid"],
    payload: "message",
    content: "text",
    fields: { "from.userId": "US.77", "from.waId": "", "from.profileName": "Bo" },
    conversationId: "PN9:US.77",
  },
  {
    name: "text from a shopper with a phone number and a BSUID: keyed by the BSUID",
    body: messageWebhook(
      { type: "text", text: { body: "hello" } },
      { ...both, wamid: "wamid.both", timestamp: ts },
    ),
    eventIds: ["wamid.both"],
    payload: "message",
    content: "text",
    fields: { "from.waId": "447700900003", "from.userId": "GB.1842930175512", "from.profileName": "Cy" },
    conversationId: "PN9:GB.1842930175512",
  },
  {
    // Meta's current shape: the new number in system.wa_id, no contacts, sent from the old identity.
    name: "system: customer changed number, with a new BSUID",
    body: envelope(
      {
        messages: [
          {
            from: both.waId,
            from_user_id: both.userId,
            id: "wamid.changed",
            timestamp: String(ts),
            type: "system",
            system: {
              body: "User Cy changed from 447700900003 to 447700900004",
              wa_id: "447700900004",
              user_id: NEW_BSUID,
              type: "user_changed_number",
            },
          },
        ],
      },
      shopper,
    ),
    eventIds: ["wamid.changed"],
    payload: "message",
    content: "system",
    fields: {
      "from.waId": "447700900003",
      "from.userId": "GB.1842930175512",
      "content.value.type": "user_changed_number",
      "content.value.newWaId": "447700900004",
      "content.value.newUserId": NEW_BSUID,
    },
    conversationId: "PN9:GB.1842930175512",
  },
  {
    name: "system: BSUID changed, no phone number (new_user_id)",
    body: envelope(
      {
        messages: [
          {
            from_user_id: "US.77",
            id: "wamid.newid",
            timestamp: String(ts),
            type: "system",
            system: { body: "User Bo's id changed", new_user_id: "US.78", type: "user_changed_user_id" },
          },
        ],
      },
      shopper,
    ),
    eventIds: ["wamid.newid"],
    payload: "message",
    content: "system",
    fields: {
      "from.waId": "",
      "from.userId": "US.77",
      "content.value.type": "user_changed_user_id",
      "content.value.newWaId": "",
      "content.value.newUserId": "US.78",
    },
    conversationId: "PN9:US.77",
  },
  {
    // Newer payloads name the replaced BSUID (previous_user_id): the notice may then come from the
    // new one, and still belongs to the old conversation.
    name: "system: BSUID changed, sent from the new BSUID with previous_user_id",
    body: envelope(
      {
        messages: [
          {
            from_user_id: "US.79",
            id: "wamid.previous",
            timestamp: String(ts),
            type: "system",
            system: { body: "User Bo's id changed", previous_user_id: "US.77", type: "user_changed_user_id" },
          },
        ],
      },
      shopper,
    ),
    eventIds: ["wamid.previous"],
    payload: "message",
    content: "system",
    fields: { "from.userId": "US.77", "content.value.newUserId": "US.79" },
    conversationId: "PN9:US.77",
  },
  ...(["sent", "delivered", "read"] as const).map(
    (status, i): WebhookFixture => ({
      name: `status ${status}`,
      body: statusWebhook("wamid.out1", status, { ...shopper, timestamp: ts + i }),
      eventIds: [`wamid.out1:${status}`],
      payload: "status",
      fields: { messageId: "wamid.out1", kind: i + 1, recipientId: "447700900001" },
      conversationId: "PN9:447700900001",
    }),
  ),
  {
    name: "status failed, with errors and pricing",
    body: (() => {
      const body = statusWebhook("wamid.out2", "failed", {
        ...shopper,
        timestamp: ts,
        errors: [{ code: 131047, title: "Re-engagement message" }],
      });
      const status = body.entry[0]?.changes[0]?.value.statuses[0] as Record<string, unknown>;
      status.pricing = { billable: false, pricing_model: "PMP", category: "marketing" };
      return body;
    })(),
    eventIds: ["wamid.out2:failed"],
    payload: "status",
    fields: { kind: 4, "errors.0.code": 131047, pricingCategory: "marketing", billable: false },
  },
  {
    name: "status of a send to a shopper known only by BSUID (recipient_user_id)",
    body: statusWebhook("wamid.out3", "delivered", { phoneNumberId: "PN9", userId: "US.77", timestamp: ts }),
    eventIds: ["wamid.out3:delivered"],
    payload: "status",
    fields: { messageId: "wamid.out3", kind: 2, recipientId: "US.77" },
    conversationId: "PN9:US.77",
  },
  {
    // The shape of Meta's first BSUID statuses: the phone number as recipient_id, the BSUID only in
    // contacts. Keyed by the BSUID all the same, like the shopper's messages.
    name: "status of a send by phone number, the BSUID in contacts",
    body: (() => {
      const body = statusWebhook("wamid.out4", "read", { ...both, timestamp: ts });
      const status = body.entry[0]?.changes[0]?.value.statuses[0] as Record<string, unknown>;
      delete status.recipient_user_id;
      return body;
    })(),
    eventIds: ["wamid.out4:read"],
    payload: "status",
    fields: { kind: 3, recipientId: "447700900003" },
    conversationId: "PN9:GB.1842930175512",
  },
  {
    name: "value-level error",
    body: envelope({ errors: [{ code: 0, title: "We were unable to authenticate the app user" }] }, shopper),
    eventIds: [],
    payload: "error",
    fields: { "errors.0.title": "We were unable to authenticate the app user" },
  },
];

/** The value at a dotted path ("a.0.b") of an object, for comparing normalised events. */
export function at(value: unknown, path: string): unknown {
  return path
    .split(".")
    .reduce<unknown>((v, key) => (v as Record<string, unknown> | undefined)?.[key], value);
}

import { createHash } from "node:crypto";
import { inbound } from "@taituri/proto";
import { z } from "zod";

/**
 * Bounds on what one event may carry. Meta's own bodies sit far inside them (a shared contact's
 * phone, the deepest field, is 12 levels down); past them a body is not Meta's ordinary traffic,
 * and an event built from it could be refused by Kafka (1 MiB a record), answered 503 for days.
 */
export const limits = {
  /** Levels of objects and arrays in a body. */
  depth: 32,
  /** Characters of an id, a name, a type or a number. */
  name: 1024,
  /** Characters of a text, a caption, an error's message. */
  text: 65_536,
  /** Items in a list inside one message (contacts shared, their phones, an order's items, errors). */
  items: 1000,
  /** Bytes of one encoded event. */
  eventBytes: 512 * 1024,
  /**
   * Seconds a message or status may be dated after we receive it. Meta's clock and ours agree to
   * within seconds, but a development clock jumps up to 30 days and this service follows it a
   * poll later; a month past that is no clock's reading, only a number that would stand as the
   * conversation's last activity.
   */
  aheadSeconds: 31 * 24 * 3600,
  /** Before WhatsApp existed: an earlier date is not a message's. */
  earliest: Date.UTC(2009, 0, 1) / 1000,
};

const name = () => z.string().max(limits.name);
const text = () => z.string().max(limits.text);
const list = <T extends z.ZodType>(item: T) => z.array(item).max(limits.items);
// Meta writes epoch seconds as a string; the range is checked against the time we received it.
const seconds = () => z.coerce.number().finite();

/**
 * The WhatsApp Cloud API webhook body, as far as we read it. Objects are loose: Meta adds fields
 * without notice, and an unknown field must never cost us a message.
 */
const errorDetail = z.looseObject({
  code: z.coerce
    .number()
    .int()
    .min(-(2 ** 31))
    .max(2 ** 31 - 1),
  title: text().optional(),
  message: text().optional(),
  // Newer payloads nest details in error_data; older ones put them at the top.
  details: text().optional(),
  error_data: z.looseObject({ details: text().optional() }).optional(),
});

const media = z.looseObject({
  id: name(),
  mime_type: name().optional(),
  sha256: name().optional(),
  caption: text().optional(),
  filename: text().optional(),
  voice: z.boolean().optional(),
});

const message = z.looseObject({
  id: name().min(1),
  from: name().optional(),
  from_user_id: name().optional(),
  timestamp: seconds(),
  // Meta's own reference sample of a contacts message has none: the content key then says it.
  type: name().optional(),
  context: z.looseObject({ id: name().optional(), forwarded: z.boolean().optional() }).optional(),
  text: z.looseObject({ body: text() }).optional(),
  interactive: z
    .looseObject({
      type: name(),
      button_reply: z.looseObject({ id: name(), title: text() }).optional(),
      list_reply: z.looseObject({ id: name(), title: text(), description: text().optional() }).optional(),
    })
    .optional(),
  button: z.looseObject({ payload: text().optional(), text: text().optional() }).optional(),
  image: media.optional(),
  audio: media.optional(),
  video: media.optional(),
  document: media.optional(),
  sticker: media.optional(),
  location: z
    .looseObject({
      latitude: z.number().min(-90).max(90),
      longitude: z.number().min(-180).max(180),
      name: text().optional(),
      address: text().optional(),
    })
    .optional(),
  reaction: z.looseObject({ message_id: name(), emoji: name().optional() }).optional(),
  contacts: list(
    z.looseObject({
      name: z.looseObject({ formatted_name: text().optional() }).optional(),
      phones: list(
        z.looseObject({ phone: name().optional(), wa_id: name().optional(), type: name().optional() }),
      ).optional(),
      emails: list(z.looseObject({ email: text().optional() })).optional(),
    }),
  ).optional(),
  order: z
    .looseObject({
      catalog_id: name().optional(),
      text: text().optional(),
      product_items: list(
        z.looseObject({
          product_retailer_id: name(),
          quantity: z.coerce
            .number()
            .int()
            .min(0)
            .max(2 ** 31 - 1),
          item_price: z.coerce.number().finite(),
          currency: name(),
        }),
      ).optional(),
    })
    .optional(),
  system: z
    .looseObject({
      type: name().optional(),
      body: text().optional(),
      wa_id: name().optional(),
      new_wa_id: name().optional(),
      // Where a number or BSUID change puts the new BSUID is not documented: both names are read.
      user_id: name().optional(),
      new_user_id: name().optional(),
      // The BSUID the change replaces (newer payloads).
      previous_user_id: name().optional(),
    })
    .optional(),
  errors: list(errorDetail).optional(),
});

const status = z.looseObject({
  id: name().min(1),
  status: name(),
  timestamp: seconds(),
  recipient_id: name().optional(),
  recipient_user_id: name().optional(),
  errors: list(errorDetail).optional(),
  pricing: z.looseObject({ category: name().optional(), billable: z.boolean().optional() }).optional(),
  // Read apart (callbackDataOf): a value we did not set must not make the status unreadable.
  biz_opaque_callback_data: z.unknown().optional(),
});

const contact = z.looseObject({
  wa_id: name().optional(),
  user_id: name().optional(),
  profile: z.looseObject({ name: text().optional() }).optional(),
});

/**
 * A change's value. Its messages and statuses are read one by one (below), so that one we cannot
 * read costs only itself; what they share (the business number, the senders' names) must be read.
 */
const value = z.looseObject({
  messaging_product: z.literal("whatsapp").optional(),
  metadata: z.looseObject({
    phone_number_id: name().min(1),
    display_phone_number: name().optional(),
  }),
  contacts: z.array(contact).optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
  errors: list(errorDetail).optional(),
});

const change = z.looseObject({ field: name(), value: z.unknown() });

const body = z.looseObject({
  object: z.literal("whatsapp_business_account"),
  entry: z.array(z.looseObject({ id: name(), changes: z.array(change) })),
});

type WireMessage = z.infer<typeof message> & { type: string };
type WireContact = z.infer<typeof contact>;
type WireError = z.infer<typeof errorDetail>;

/**
 * The event that tells the conversation an outbound message will not be delivered. Its id is
 * derived from the outbound id, so saying it twice (after a redelivery) is deduplicated downstream.
 */
export function deliveryFailureEvent(
  failed: { outboundId: string; conversationId: string; phoneNumberId: string },
  reason: inbound.DeliveryFailureReason,
  detail: string,
  code: number,
  at: Date,
): inbound.InboundEvent {
  return {
    eventId: `delivery-failure:${failed.outboundId}`,
    conversationId: failed.conversationId,
    business: { phoneNumberId: failed.phoneNumberId, displayPhoneNumber: "", wabaId: "" },
    receivedAt: at,
    payload: {
      $case: "deliveryFailure",
      value: { outboundMessageId: failed.outboundId, reason, code, detail },
    },
  };
}

/** A part of a signed webhook we could not read: acknowledged, then kept for a person to look at. */
export interface Unreadable {
  reason: string;
}

export interface ParsedWebhook {
  events: inbound.InboundEvent[];
  unreadable: Unreadable[];
}

/** "<phone_number_id>:<shopper key>": the Kafka key that keeps one shopper's events in order. */
export const conversationId = (phoneNumberId: string, key: string) => `${phoneNumberId}:${key}`;

/**
 * The shopper's key in conversation ids: the business-scoped user id (BSUID) when the webhook has
 * one, else the phone number. BSUID first because Meta puts it in every message webhook, with or
 * without the phone number: a shopper whose number appears in one webhook and not in the next keeps
 * one key, one conversation, one partition. A phone number change gives a new BSUID; Meta announces
 * it with a system message (user_changed_number) that the conversation follows.
 */
const shopperKey = (ids: { waId: string; userId: string }) => ids.userId || ids.waId;

/** The BSUID Meta gives beside a phone number in `contacts`, when it names the same user. */
const userIdOf = (contacts: WireContact[], waId: string | undefined) =>
  waId ? contacts.find((c) => c.wa_id === waId)?.user_id : undefined;

/**
 * Who wrote a message: the phone number (`from`) and the BSUID (`from_user_id`, else the one
 * `contacts` gives for that number), each when the webhook has it. A notice that a number or BSUID
 * changed comes from the old identity; when it also names the identity it replaces
 * (`system.previous_user_id`), that one is the sender, so the notice reaches the conversation it
 * is about whichever identity Meta sends it from.
 */
function senderOf(m: WireMessage, contacts: WireContact[]): { waId: string; userId: string } {
  const replaced = m.type === "system" ? m.system?.previous_user_id : undefined;
  return { waId: m.from ?? "", userId: replaced ?? m.from_user_id ?? userIdOf(contacts, m.from) ?? "" };
}

/**
 * Normalises every entry and change of a webhook body into inbound events. What cannot be read is
 * reported, never thrown: one odd change must not make Meta retry (and us re-publish) the whole body.
 */
export function parseWebhook(json: unknown, receivedAt: Date): ParsedWebhook {
  if (deeperThan(json, limits.depth))
    return { events: [], unreadable: [{ reason: `body nested deeper than ${limits.depth} levels` }] };
  const parsed = body.safeParse(json);
  if (!parsed.success)
    return { events: [], unreadable: [{ reason: `not a WhatsApp webhook: ${summary(parsed.error)}` }] };
  const events: inbound.InboundEvent[] = [];
  const unreadable: Unreadable[] = [];
  for (const entry of parsed.data.entry) {
    for (const [index, raw] of entry.changes.entries()) {
      if (raw.field !== "messages") {
        unreadable.push({ reason: `entry ${entry.id} change ${index}: unhandled field "${raw.field}"` });
        continue;
      }
      const result = value.safeParse(raw.value);
      if (!result.success) {
        unreadable.push({ reason: `entry ${entry.id} change ${index}: ${summary(result.error)}` });
        continue;
      }
      const v = result.data;
      const business: inbound.Business = {
        phoneNumberId: v.metadata.phone_number_id,
        displayPhoneNumber: v.metadata.display_phone_number ?? "",
        wabaId: entry.id,
      };
      const contacts = v.contacts ?? [];
      const names = new Map<string, string>();
      for (const c of contacts) {
        const name = c.profile?.name;
        if (name && c.wa_id) names.set(c.wa_id, name);
        if (name && c.user_id) names.set(c.user_id, name);
      }
      for (const [position, item] of (v.messages ?? []).entries()) {
        const read = message.safeParse(item);
        const label = `message ${idOf(item) ?? `${position} of entry ${entry.id} change ${index}`}`;
        if (!read.success) {
          unreadable.push({ reason: `${label}: ${summary(read.error)}` });
          continue;
        }
        const m = { ...read.data, type: read.data.type ?? typeOf(read.data) };
        const sentAt = dateOf(m.timestamp, receivedAt);
        if (typeof sentAt === "string") {
          unreadable.push({ reason: `${label}: ${sentAt}` });
          continue;
        }
        const sender = senderOf(m, contacts);
        const key = shopperKey(sender);
        if (!key) {
          unreadable.push({ reason: `${label}: neither from nor from_user_id` });
          continue;
        }
        const profileName = names.get(sender.userId) ?? names.get(sender.waId) ?? "";
        events.push({
          eventId: m.id,
          conversationId: conversationId(business.phoneNumberId, key),
          business,
          receivedAt,
          payload: {
            $case: "message",
            value: {
              id: m.id,
              from: { ...sender, profileName },
              sentAt,
              contextMessageId: m.context?.id ?? "",
              forwarded: m.context?.forwarded ?? false,
              content: content(m),
            },
          },
        });
      }
      for (const [position, item] of (v.statuses ?? []).entries()) {
        const read = status.safeParse(item);
        const label = `status ${idOf(item) ?? `${position} of entry ${entry.id} change ${index}`}`;
        if (!read.success) {
          unreadable.push({ reason: `${label}: ${summary(read.error)}` });
          continue;
        }
        const s = read.data;
        const at = dateOf(s.timestamp, receivedAt);
        if (typeof at === "string") {
          unreadable.push({ reason: `${label}: ${at}` });
          continue;
        }
        const recipient = s.recipient_id ?? s.recipient_user_id;
        if (!recipient) {
          unreadable.push({ reason: `${label}: no recipient` });
          continue;
        }
        // Keyed like the shopper's messages, so a status lands in the same conversation.
        const key = shopperKey({
          waId: s.recipient_id ?? "",
          userId: s.recipient_user_id ?? userIdOf(contacts, s.recipient_id) ?? "",
        });
        events.push({
          eventId: `${s.id}:${s.status}`,
          conversationId: conversationId(business.phoneNumberId, key),
          business,
          receivedAt,
          payload: {
            $case: "status",
            value: {
              messageId: s.id,
              kind: statusKinds[s.status] ?? inbound.StatusKind.STATUS_KIND_UNSPECIFIED,
              recipientId: recipient,
              at,
              errors: (s.errors ?? []).map(detail),
              pricingCategory: s.pricing?.category ?? "",
              billable: s.pricing?.billable ?? false,
              callbackData: callbackDataOf(s.biz_opaque_callback_data),
            },
          },
        });
      }
      if (v.errors?.length) {
        const errors = v.errors.map(detail);
        events.push({
          // Value-level errors have no id of their own; their content identifies Meta's retry of
          // them. What we read of them, not the raw objects: those may hold anything.
          eventId: `error:${createHash("sha256")
            .update(JSON.stringify([entry.id, business.phoneNumberId, errors]))
            .digest("hex")
            .slice(0, 32)}`,
          conversationId: conversationId(business.phoneNumberId, ""),
          business,
          receivedAt,
          payload: { $case: "error", value: { errors } },
        });
      }
    }
  }
  return { events, unreadable };
}

/** Meta's limit on biz_opaque_callback_data (send-message reference). */
export const CALLBACK_DATA_MAX = 512;

/**
 * A status's biz_opaque_callback_data as the dispatcher set it (an outbound id), or "" for anything
 * else: another app on the same account may set what it likes, and only a string within Meta's
 * limit can be one of ours.
 */
const callbackDataOf = (value: unknown) =>
  typeof value === "string" && value.length <= CALLBACK_DATA_MAX ? value : "";

/** The message's or status's own id, when it has one, to name it in a reason. */
function idOf(item: unknown): string | undefined {
  const id = (item as { id?: unknown } | null)?.id;
  return typeof id === "string" && id.length > 0 ? id.slice(0, limits.name) : undefined;
}

/** The time Meta dates an event with, or why it cannot be an event's. */
function dateOf(seconds: number, receivedAt: Date): Date | string {
  const latest = receivedAt.getTime() / 1000 + limits.aheadSeconds;
  if (seconds < limits.earliest || seconds > latest)
    return `timestamp ${seconds} out of range (${limits.earliest} to ${Math.floor(latest)}, seconds)`;
  return new Date(seconds * 1000);
}

/** The content keys Meta names a message's type by, in the order they are looked for. */
const contentKeys = [
  "text",
  "interactive",
  "button",
  "image",
  "audio",
  "video",
  "document",
  "sticker",
  "location",
  "reaction",
  "contacts",
  "order",
  "system",
] as const;

/**
 * A message's type when Meta leaves `type` out: the key of the content it carries. Without one the
 * message is unsupported, and said so with an empty type.
 */
export function typeOf(m: z.infer<typeof message>): string {
  return contentKeys.find((key) => m[key] !== undefined) ?? "";
}

/**
 * Whether `json` nests objects and arrays more than `limit` levels. Walked without recursion: the
 * body is what is being checked, so it must not be able to overflow the stack doing it.
 */
export function deeperThan(json: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[json, 1]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [node, depth] = next;
    if (node === null || typeof node !== "object") continue;
    if (depth > limit) return true;
    for (const child of Object.values(node)) pending.push([child, depth + 1]);
  }
  return false;
}

const statusKinds: Record<string, inbound.StatusKind> = {
  sent: inbound.StatusKind.STATUS_KIND_SENT,
  delivered: inbound.StatusKind.STATUS_KIND_DELIVERED,
  read: inbound.StatusKind.STATUS_KIND_READ,
  failed: inbound.StatusKind.STATUS_KIND_FAILED,
  played: inbound.StatusKind.STATUS_KIND_PLAYED,
};

const mediaKinds = {
  image: inbound.MediaKind.MEDIA_KIND_IMAGE,
  audio: inbound.MediaKind.MEDIA_KIND_AUDIO,
  video: inbound.MediaKind.MEDIA_KIND_VIDEO,
  document: inbound.MediaKind.MEDIA_KIND_DOCUMENT,
  sticker: inbound.MediaKind.MEDIA_KIND_STICKER,
} as const;

function content(m: WireMessage): inbound.Message["content"] {
  if (m.type === "text" && m.text) return { $case: "text", value: { body: m.text.body } };
  if (m.type === "interactive" && m.interactive?.button_reply) {
    const r = m.interactive.button_reply;
    return {
      $case: "reply",
      value: { kind: inbound.ReplyKind.REPLY_KIND_BUTTON, id: r.id, title: r.title, description: "" },
    };
  }
  if (m.type === "interactive" && m.interactive?.list_reply) {
    const r = m.interactive.list_reply;
    return {
      $case: "reply",
      value: {
        kind: inbound.ReplyKind.REPLY_KIND_LIST,
        id: r.id,
        title: r.title,
        description: r.description ?? "",
      },
    };
  }
  if (m.type === "button" && m.button) {
    const text = m.button.text ?? "";
    return {
      $case: "reply",
      value: {
        kind: inbound.ReplyKind.REPLY_KIND_TEMPLATE_BUTTON,
        id: m.button.payload ?? text,
        title: text,
        description: "",
      },
    };
  }
  // Own keys only: a type of "constructor" or "toString" names no media.
  if (Object.hasOwn(mediaKinds, m.type)) {
    const kind = m.type as keyof typeof mediaKinds;
    const media = m[kind];
    if (media) {
      return {
        $case: "media",
        value: {
          kind: mediaKinds[kind],
          mediaId: media.id,
          mimeType: media.mime_type ?? "",
          sha256: media.sha256 ?? "",
          caption: media.caption ?? "",
          filename: media.filename ?? "",
          voice: media.voice ?? false,
        },
      };
    }
  }
  if (m.type === "location" && m.location) {
    const l = m.location;
    return {
      $case: "location",
      value: { latitude: l.latitude, longitude: l.longitude, name: l.name ?? "", address: l.address ?? "" },
    };
  }
  if (m.type === "reaction" && m.reaction) {
    return { $case: "reaction", value: { messageId: m.reaction.message_id, emoji: m.reaction.emoji ?? "" } };
  }
  if (m.type === "contacts" && m.contacts) {
    return {
      $case: "contacts",
      value: {
        contacts: m.contacts.map((c) => ({
          formattedName: c.name?.formatted_name ?? "",
          phones: (c.phones ?? []).map((p) => ({
            phone: p.phone ?? "",
            waId: p.wa_id ?? "",
            type: p.type ?? "",
          })),
          emails: (c.emails ?? []).flatMap((e) => (e.email ? [e.email] : [])),
        })),
      },
    };
  }
  if (m.type === "order" && m.order) {
    return {
      $case: "order",
      value: {
        catalogId: m.order.catalog_id ?? "",
        text: m.order.text ?? "",
        items: (m.order.product_items ?? []).map((i) => ({
          productRetailerId: i.product_retailer_id,
          quantity: i.quantity,
          itemPrice: i.item_price,
          currency: i.currency,
        })),
      },
    };
  }
  if (m.type === "system" && m.system) {
    const s = m.system;
    // A notice sent from the new identity names the old one in previous_user_id: then the sender's
    // own BSUID is the new one.
    const sentFromNew = s.previous_user_id !== undefined && m.from_user_id !== s.previous_user_id;
    return {
      $case: "system",
      value: {
        type: s.type ?? "",
        body: s.body ?? "",
        // The new number is system.wa_id; older payloads called it new_wa_id.
        newWaId: s.new_wa_id ?? s.wa_id ?? "",
        newUserId: s.new_user_id ?? s.user_id ?? (sentFromNew ? m.from_user_id : undefined) ?? "",
      },
    };
  }
  return { $case: "unsupported", value: { type: m.type, errors: (m.errors ?? []).map(detail) } };
}

function detail(e: WireError): inbound.ErrorDetail {
  return {
    code: e.code,
    title: e.title ?? "",
    message: e.message ?? "",
    details: e.error_data?.details ?? e.details ?? "",
  };
}

function summary(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join(".") || "(body)"}: ${issue.message}`)
    .join("; ");
}

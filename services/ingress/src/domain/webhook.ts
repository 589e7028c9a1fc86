import { createHash } from "node:crypto";
import { inbound } from "@taituri/proto";
import { z } from "zod";

/**
 * The WhatsApp Cloud API webhook body, as far as we read it. Objects are loose: Meta adds fields
 * without notice, and an unknown field must never cost us a message.
 */
const errorDetail = z.looseObject({
  code: z.coerce.number().int(),
  title: z.string().optional(),
  message: z.string().optional(),
  // Newer payloads nest details in error_data; older ones put them at the top.
  details: z.string().optional(),
  error_data: z.looseObject({ details: z.string().optional() }).optional(),
});

const media = z.looseObject({
  id: z.string(),
  mime_type: z.string().optional(),
  sha256: z.string().optional(),
  caption: z.string().optional(),
  filename: z.string().optional(),
  voice: z.boolean().optional(),
});

const message = z.looseObject({
  id: z.string().min(1),
  from: z.string().optional(),
  from_user_id: z.string().optional(),
  timestamp: z.coerce.number(),
  type: z.string(),
  context: z.looseObject({ id: z.string().optional(), forwarded: z.boolean().optional() }).optional(),
  text: z.looseObject({ body: z.string() }).optional(),
  interactive: z
    .looseObject({
      type: z.string(),
      button_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
      list_reply: z
        .looseObject({ id: z.string(), title: z.string(), description: z.string().optional() })
        .optional(),
    })
    .optional(),
  button: z.looseObject({ payload: z.string().optional(), text: z.string().optional() }).optional(),
  image: media.optional(),
  audio: media.optional(),
  video: media.optional(),
  document: media.optional(),
  sticker: media.optional(),
  location: z
    .looseObject({
      latitude: z.number(),
      longitude: z.number(),
      name: z.string().optional(),
      address: z.string().optional(),
    })
    .optional(),
  reaction: z.looseObject({ message_id: z.string(), emoji: z.string().optional() }).optional(),
  contacts: z
    .array(
      z.looseObject({
        name: z.looseObject({ formatted_name: z.string().optional() }).optional(),
        phones: z
          .array(
            z.looseObject({
              phone: z.string().optional(),
              wa_id: z.string().optional(),
              type: z.string().optional(),
            }),
          )
          .optional(),
        emails: z.array(z.looseObject({ email: z.string().optional() })).optional(),
      }),
    )
    .optional(),
  order: z
    .looseObject({
      catalog_id: z.string().optional(),
      text: z.string().optional(),
      product_items: z
        .array(
          z.looseObject({
            product_retailer_id: z.string(),
            quantity: z.coerce.number().int(),
            item_price: z.coerce.number(),
            currency: z.string(),
          }),
        )
        .optional(),
    })
    .optional(),
  system: z
    .looseObject({
      type: z.string().optional(),
      body: z.string().optional(),
      wa_id: z.string().optional(),
      new_wa_id: z.string().optional(),
      // Where a number or BSUID change puts the new BSUID is not documented: both names are read.
      user_id: z.string().optional(),
      new_user_id: z.string().optional(),
      // The BSUID the change replaces (newer payloads).
      previous_user_id: z.string().optional(),
    })
    .optional(),
  errors: z.array(errorDetail).optional(),
});

const status = z.looseObject({
  id: z.string().min(1),
  status: z.string(),
  timestamp: z.coerce.number(),
  recipient_id: z.string().optional(),
  recipient_user_id: z.string().optional(),
  errors: z.array(errorDetail).optional(),
  pricing: z.looseObject({ category: z.string().optional(), billable: z.boolean().optional() }).optional(),
});

const contact = z.looseObject({
  wa_id: z.string().optional(),
  user_id: z.string().optional(),
  profile: z.looseObject({ name: z.string().optional() }).optional(),
});

const value = z.looseObject({
  messaging_product: z.literal("whatsapp").optional(),
  metadata: z.looseObject({
    phone_number_id: z.string().min(1),
    display_phone_number: z.string().optional(),
  }),
  contacts: z.array(contact).optional(),
  messages: z.array(message).optional(),
  statuses: z.array(status).optional(),
  errors: z.array(errorDetail).optional(),
});

const change = z.looseObject({ field: z.string(), value: z.unknown() });

const body = z.looseObject({
  object: z.literal("whatsapp_business_account"),
  entry: z.array(z.looseObject({ id: z.string(), changes: z.array(change) })),
});

type WireMessage = z.infer<typeof message>;
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
      for (const m of v.messages ?? []) {
        const sender = senderOf(m, contacts);
        const key = shopperKey(sender);
        if (!key) {
          unreadable.push({ reason: `message ${m.id}: neither from nor from_user_id` });
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
              sentAt: new Date(m.timestamp * 1000),
              contextMessageId: m.context?.id ?? "",
              forwarded: m.context?.forwarded ?? false,
              content: content(m),
            },
          },
        });
      }
      for (const s of v.statuses ?? []) {
        const recipient = s.recipient_id ?? s.recipient_user_id;
        if (!recipient) {
          unreadable.push({ reason: `status ${s.id}: no recipient` });
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
              at: new Date(s.timestamp * 1000),
              errors: (s.errors ?? []).map(detail),
              pricingCategory: s.pricing?.category ?? "",
              billable: s.pricing?.billable ?? false,
            },
          },
        });
      }
      if (v.errors?.length) {
        events.push({
          // Value-level errors have no id of their own; their content identifies Meta's retry of them.
          eventId: `error:${createHash("sha256")
            .update(JSON.stringify([entry.id, business.phoneNumberId, v.errors]))
            .digest("hex")
            .slice(0, 32)}`,
          conversationId: conversationId(business.phoneNumberId, ""),
          business,
          receivedAt,
          payload: { $case: "error", value: { errors: v.errors.map(detail) } },
        });
      }
    }
  }
  return { events, unreadable };
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
  if (m.type in mediaKinds) {
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

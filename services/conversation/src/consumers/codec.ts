import {
  decodeRecord,
  encodeRecord,
  type IncomingMessage,
  PermanentError,
  Records,
  type TopicNames,
} from "@taituri/kafka";
import { inbound, type outbound, payment } from "@taituri/proto";
import type { Contact, ConversationDoc, OutboxEntry } from "../adapters/store.ts";
import type { Delivery, Effect, Event, Input, Outgoing } from "../domain/machine.ts";

/**
 * Between Kafka records and the state machine, with no I/O: what each record on the conversation's
 * topics is as an event for one conversation (its idempotency key included), and what each effect
 * is as a record to publish. The apply loop (events.ts) does the rest.
 */

/** An event for one conversation, with its idempotency key. */
export interface Arrival {
  eventId: string;
  conversationId: string;
  event: Event;
  /** Only messages carry these: who wrote, from which business number, and when. */
  phoneNumberId?: string;
  shopperId?: string;
  /** The shopper's ids as this message gave them (either may be missing). */
  contact?: Contact;
  /** A notice that the shopper's ids changed (user_changed_number, user_changed_user_id). */
  identityChange?: { type: string; waId: string; userId: string };
  sentAt?: Date;
  /** A watchdog firing: removed from the conversation in the same write. */
  firedTimerId?: string;
  /** Whether the message's own ids were claimed on its way here (route). */
  idsClaimed?: boolean;
}

export function decode(incoming: IncomingMessage, topics: TopicNames): Arrival | undefined {
  if (incoming.topic === topics.inbound) {
    const event = decodeRecord(Records.inboundEvent, incoming);
    if (!event.eventId || !event.conversationId)
      throw new PermanentError("inbound event without event id or conversation id");
    const payload = event.payload;
    if (payload?.$case === "message") {
      const message = payload.value;
      const sentAt = message.sentAt ?? event.receivedAt ?? new Date();
      const content = message.content;
      const system = content?.$case === "system" ? content.value : undefined;
      return {
        eventId: event.eventId,
        conversationId: event.conversationId,
        phoneNumberId: event.business?.phoneNumberId ?? "",
        shopperId: message.from?.userId || message.from?.waId || "",
        contact: {
          ...(message.from?.waId ? { waId: message.from.waId } : {}),
          ...(message.from?.userId ? { userId: message.from.userId } : {}),
        },
        ...(system && IDENTITY_CHANGES.has(system.type)
          ? { identityChange: { type: system.type, waId: system.newWaId, userId: system.newUserId } }
          : {}),
        // A notice from WhatsApp is not the shopper writing: it does not open the 24-hour window.
        ...(system ? {} : { sentAt }),
        event: {
          type: "message",
          messageId: message.id,
          at: sentAt.getTime(),
          shopperName: message.from?.profileName ?? "",
          input: toInput(message),
        },
      };
    }
    if (payload?.$case === "deliveryFailure") {
      return {
        eventId: event.eventId,
        conversationId: event.conversationId,
        event: {
          type: "delivery_failed",
          outboundId: payload.value.outboundMessageId,
          reason: payload.value.detail,
        },
      };
    }
    // Delivery statuses and webhook errors are the dispatcher's business.
    return undefined;
  }
  if (incoming.topic === topics.generationResults) {
    const result = decodeRecord(Records.generationResult, incoming);
    const outcome = result.outcome;
    if (!result.roundId || !result.conversationId || !outcome)
      throw new PermanentError("generation result without round, conversation or outcome");
    const base = {
      eventId: `generation:${result.roundId}:${outcome.$case}`,
      conversationId: result.conversationId,
    };
    switch (outcome.$case) {
      case "completed":
        return {
          ...base,
          event: {
            type: "generation_completed",
            roundId: result.roundId,
            designs: outcome.value.designs.map((d) => ({ id: d.id, imageId: d.imageId })),
          },
        };
      case "failed":
        return {
          ...base,
          event: { type: "generation_failed", roundId: result.roundId, reason: outcome.value.reason },
        };
      case "rejected":
        return {
          ...base,
          event: {
            type: "generation_rejected",
            roundId: result.roundId,
            retryAfterMs: outcome.value.retryAfterMs,
          },
        };
    }
  }
  if (incoming.topic === topics.paymentEvents) {
    const event = decodeRecord(Records.paymentEvent, incoming);
    const outcome = event.outcome;
    if (!event.orderId || !event.conversationId || !outcome)
      throw new PermanentError("payment event without order, conversation or outcome");
    const base = { conversationId: event.conversationId };
    const order = { orderId: event.orderId, orderNumber: event.orderNumber };
    switch (outcome.$case) {
      case "linkCreated":
        // Each new link (an expired session replaced) is an event of its own.
        return {
          ...base,
          eventId: `payment:${event.orderId}:link:${outcome.value.url}`,
          event: { type: "payment_link", ...order, url: outcome.value.url },
        };
      case "succeeded":
        return {
          ...base,
          eventId: `payment:${event.orderId}:succeeded`,
          event: { type: "payment_succeeded", ...order },
        };
      case "failed":
        return {
          ...base,
          eventId: `payment:${event.orderId}:failed:${outcome.value.reason}`,
          event: { type: "payment_failed", ...order, reason: outcome.value.reason },
        };
      case "expired":
        return {
          ...base,
          eventId: `payment:${event.orderId}:expired:${incoming.offset}`,
          event: { type: "payment_expired", ...order },
        };
      case "shipped":
        // An order is shipped once (the payment service's order states), so once per order.
        return {
          ...base,
          eventId: `payment:${event.orderId}:shipped`,
          event: {
            type: "payment_shipped",
            ...order,
            ...(outcome.value.trackingUrl ? { trackingUrl: outcome.value.trackingUrl } : {}),
          },
        };
      case "refunded":
        // An order is refunded once (the payment service's state machine), so once per order.
        return {
          ...base,
          eventId: `payment:${event.orderId}:refunded`,
          event: {
            type: "payment_refunded",
            ...order,
            reason:
              outcome.value.reason === payment.RefundReason.REFUND_REASON_CANCELLED_BEFORE_PAYMENT
                ? "cancelled_before_payment"
                : "by_shop",
            amount: outcome.value.amount,
            currency: outcome.value.currency,
          },
        };
    }
  }
  return undefined;
}

export function toOutbox(
  effect: Effect,
  id: string,
  topics: TopicNames,
  c: {
    conversationId: string;
    phoneNumberId: string;
    shopperId: string;
    contact: Contact;
    shopId: string;
    lastInboundAt: Date | undefined;
    at: Date;
  },
): OutboxEntry | undefined {
  switch (effect.type) {
    case "send":
      return {
        id,
        topic: topics.outbound,
        key: c.conversationId,
        ...encodeRecord(Records.outboundMessage, {
          id,
          conversationId: c.conversationId,
          phoneNumberId: c.phoneNumberId,
          to: c.contact.waId ?? "",
          recipientUserId: c.contact.userId ?? "",
          replyToMessageId: "",
          lastInboundAt: c.lastInboundAt,
          content: toContent(effect.message),
        }),
      };
    case "request_generation":
      return {
        id,
        topic: topics.generationRequests,
        key: c.conversationId,
        ...encodeRecord(Records.generationRequest, {
          roundId: effect.roundId,
          conversationId: c.conversationId,
          shopId: c.shopId,
          phoneNumberId: c.phoneNumberId,
          shopperId: c.shopperId,
          recipient: effect.recipient,
          theme: effect.theme,
          style: effect.style,
          productId: effect.productId,
          count: effect.count,
          requestedAt: c.at,
        }),
      };
    case "request_payment":
      return {
        id,
        topic: topics.paymentRequests,
        key: c.conversationId,
        ...encodeRecord(Records.paymentRequest, {
          orderId: effect.orderId,
          conversationId: c.conversationId,
          shopId: c.shopId,
          designId: effect.designId,
          imageId: effect.imageId,
          productId: effect.productId,
          amount: effect.amount,
          currency: effect.currency,
          delivery: toDelivery(effect.delivery),
          recipient: effect.recipient,
        }),
      };
    case "cancel_order":
      return {
        id,
        topic: topics.paymentRequests,
        key: c.conversationId,
        ...encodeRecord(Records.cancelOrder, {
          orderId: effect.orderId,
          conversationId: c.conversationId,
          reason:
            effect.reason === "shopper"
              ? payment.CancelReason.CANCEL_REASON_SHOPPER
              : payment.CancelReason.CANCEL_REASON_REPLACED,
        }),
      };
    case "schedule_timer":
    case "cancel_timer":
      return undefined;
  }
}

/** System notices that change a shopper's ids. */
const IDENTITY_CHANGES = new Set(["user_changed_number", "user_changed_user_id"]);

/**
 * Where a conversation's replies went so far. Conversations stored before `contact` existed have
 * only their first id: a BSUID has a dot after its country code, a phone number is digits.
 */
export function contactOf(doc: ConversationDoc): Contact {
  if (doc.contact) return doc.contact;
  return doc.shopperId.includes(".") ? { userId: doc.shopperId } : { waId: doc.shopperId };
}

/**
 * The ids replies go to after this event. A message's ids add to what is known: a phone number
 * missing from a later webhook is still the shopper's. A number change replaces the phone number,
 * and the BSUID with it (Meta gives a new one), unless the notice names the new BSUID too.
 */
export function nextContact(known: Contact, arrival: Arrival): Contact {
  const change = arrival.identityChange;
  if (change?.type === "user_changed_number" && change.waId)
    return { waId: change.waId, ...(change.userId ? { userId: change.userId } : {}) };
  if (change?.type === "user_changed_user_id" && change.userId) return { ...known, userId: change.userId };
  return { ...known, ...arrival.contact };
}

function toDelivery(delivery: Delivery): payment.Delivery {
  switch (delivery.method) {
    case "address":
      return {
        method: {
          $case: "address",
          value: {
            name: delivery.name,
            line1: delivery.line1,
            line2: delivery.line2 ?? "",
            city: delivery.city,
            postcode: delivery.postcode,
            country: delivery.country,
          },
        },
      };
    case "pickup":
      return { method: { $case: "pickup", value: { locationId: delivery.locationId, name: delivery.name } } };
  }
}

function toContent(message: Outgoing): outbound.OutboundMessage["content"] {
  switch (message.kind) {
    case "text":
      return { $case: "text", value: { body: message.text, previewUrl: false } };
    case "buttons":
      return {
        $case: "buttons",
        value: { body: message.body, header: "", footer: "", buttons: message.buttons },
      };
    case "list":
      return {
        $case: "list",
        value: {
          body: message.body,
          header: "",
          footer: "",
          button: message.button,
          sections: [
            {
              title: "",
              rows: message.rows.map((r) => ({ id: r.id, title: r.title, description: r.description ?? "" })),
            },
          ],
        },
      };
    case "image":
      return {
        $case: "image",
        value: { source: { $case: "storedImageId", value: message.imageId }, caption: message.caption },
      };
    case "cta":
      return {
        $case: "ctaUrl",
        value: {
          body: message.body,
          header: "",
          footer: "",
          displayText: message.displayText,
          url: message.url,
        },
      };
  }
}

function toInput(message: inbound.Message): Input {
  const content = message.content;
  switch (content?.$case) {
    case "text":
      return { kind: "text", text: content.value.body };
    case "reply":
      return { kind: "reply", id: content.value.id, title: content.value.title };
    case "media":
      return { kind: "media", media: content.value.voice ? "voice" : mediaKindName(content.value.kind) };
    case "location":
    case "reaction":
    case "contacts":
    case "order":
      return { kind: "other", type: content.$case };
    case "system":
      return { kind: "other", type: `system.${content.value.type}` };
    case "unsupported":
      return { kind: "other", type: content.value.type };
    case undefined:
      return { kind: "other", type: "none" };
  }
}

/** "MEDIA_KIND_STICKER" -> "sticker": what the machine (and its metrics) call the media. */
function mediaKindName(kind: inbound.MediaKind): string {
  const name =
    Object.entries(inbound.MediaKind).find(([, value]) => value === kind)?.[0] ?? "MEDIA_KIND_UNSPECIFIED";
  return name.replace("MEDIA_KIND_", "").toLowerCase();
}

import type { outbound } from "@taituri/proto";

export class InvalidOutboundMessage extends Error {
  override readonly name = "InvalidOutboundMessage";
}

/** WhatsApp's limit on a text message body. */
const MAX_TEXT_LENGTH = 4096;

/**
 * The Cloud API send-message body for an outbound message. Content WhatsApp would refuse is refused
 * here, with the reason, instead of being cut into something the shopper cannot make sense of.
 */
export function toGraphPayload(message: outbound.OutboundMessage): Record<string, unknown> {
  if (!message.to) throw new InvalidOutboundMessage(`outbound ${message.id}: no recipient`);
  if (!message.phoneNumberId)
    throw new InvalidOutboundMessage(`outbound ${message.id}: no sending phone number id`);
  const base: Record<string, unknown> = {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to: message.to,
    ...(message.replyToMessageId ? { context: { message_id: message.replyToMessageId } } : {}),
  };
  const content = message.content;
  switch (content?.$case) {
    case "text": {
      const body = content.value.body;
      if (body.trim() === "") throw new InvalidOutboundMessage(`outbound ${message.id}: empty text`);
      if (body.length > MAX_TEXT_LENGTH) {
        throw new InvalidOutboundMessage(
          `outbound ${message.id}: text of ${body.length} characters, over ${MAX_TEXT_LENGTH}`,
        );
      }
      return { ...base, type: "text", text: { body, preview_url: content.value.previewUrl } };
    }
    case undefined:
      throw new InvalidOutboundMessage(`outbound ${message.id}: no content`);
  }
}

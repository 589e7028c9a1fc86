import { createHmac } from "node:crypto";

/** The X-Hub-Signature-256 value Meta would send for this body. */
export function signWebhook(body: string | Buffer, appSecret: string): string {
  return `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`;
}

export interface WebhookMessageOptions {
  phoneNumberId?: string;
  displayPhoneNumber?: string;
  wabaId?: string;
  waId?: string;
  userId?: string;
  profileName?: string;
  wamid?: string;
  timestamp?: number;
}

/** The envelope Meta wraps every change in: one entry, one "messages" change, with `value` inside. */
export function envelope<V extends Record<string, unknown>>(value: V, options: WebhookMessageOptions) {
  return {
    object: "whatsapp_business_account",
    entry: [
      {
        id: options.wabaId ?? "102290129340398",
        changes: [
          {
            field: "messages",
            value: {
              messaging_product: "whatsapp",
              metadata: {
                display_phone_number: options.displayPhoneNumber ?? "15550009999",
                phone_number_id: options.phoneNumberId ?? "106540352242922",
              },
              ...value,
            },
          },
        ],
      },
    ],
  };
}

const timestamp = (options: WebhookMessageOptions) =>
  String(options.timestamp ?? Math.floor(Date.now() / 1000));

/**
 * A Cloud API webhook body carrying one message, in the shape Meta sends (see shared
 * whatsapp-samples for real ones). `message` holds the type-specific part, e.g.
 * `{ type: "text", text: { body: "hi" } }`.
 */
export function messageWebhook(message: Record<string, unknown>, options: WebhookMessageOptions = {}) {
  const waId = options.waId ?? "15550001111";
  return envelope(
    {
      contacts: [
        {
          profile: { name: options.profileName ?? "Ana" },
          wa_id: waId,
          ...(options.userId ? { user_id: options.userId } : {}),
        },
      ],
      messages: [
        {
          from: waId,
          id: options.wamid ?? `wamid.${Math.random().toString(36).slice(2)}`,
          timestamp: timestamp(options),
          ...message,
        },
      ],
    },
    options,
  );
}

export const textWebhook = (text: string, options: WebhookMessageOptions = {}) =>
  messageWebhook({ type: "text", text: { body: text } }, options);

/** A webhook body carrying one delivery status of a message we sent. */
export function statusWebhook(
  wamid: string,
  status: "sent" | "delivered" | "read" | "failed",
  options: WebhookMessageOptions & { errors?: { code: number; title: string }[] } = {},
) {
  return envelope(
    {
      statuses: [
        {
          id: wamid,
          status,
          timestamp: timestamp(options),
          recipient_id: options.waId ?? "15550001111",
          ...(options.errors ? { errors: options.errors } : {}),
        },
      ],
    },
    options,
  );
}

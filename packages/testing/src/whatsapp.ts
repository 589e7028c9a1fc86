import { createHmac } from "node:crypto";

/** The X-Hub-Signature-256 value Meta would send for this body. */
export function signWebhook(body: string | Buffer, appSecret: string): string {
  return `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`;
}

export interface WebhookMessageOptions {
  phoneNumberId?: string;
  displayPhoneNumber?: string;
  wabaId?: string;
  /**
   * The shopper's phone number. With neither waId nor userId, a default phone number: the shape
   * of webhooks before business-scoped user ids.
   */
  waId?: string;
  /** The shopper's business-scoped user id (BSUID); alone, the shopper shows no phone number. */
  userId?: string;
  profileName?: string;
  wamid?: string;
  timestamp?: number;
}

const DEFAULT_WA_ID = "15550001111";

/** The shopper's ids as Meta puts them in a webhook: a phone number, a BSUID, or both. */
function identity(options: WebhookMessageOptions): { waId?: string; userId?: string } {
  if (options.waId === undefined && options.userId === undefined) return { waId: DEFAULT_WA_ID };
  return {
    ...(options.waId !== undefined ? { waId: options.waId } : {}),
    ...(options.userId !== undefined ? { userId: options.userId } : {}),
  };
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
 * `{ type: "text", text: { body: "hi" } }`. The sender is named as Meta names them: a phone number
 * in `from` and `contacts[].wa_id`, a BSUID in `from_user_id` and `contacts[].user_id`, each when
 * the shopper has it.
 */
export function messageWebhook(message: Record<string, unknown>, options: WebhookMessageOptions = {}) {
  const { waId, userId } = identity(options);
  return envelope(
    {
      contacts: [
        {
          profile: { name: options.profileName ?? "Ana" },
          ...(waId !== undefined ? { wa_id: waId } : {}),
          ...(userId !== undefined ? { user_id: userId } : {}),
        },
      ],
      messages: [
        {
          ...(waId !== undefined ? { from: waId } : {}),
          ...(userId !== undefined ? { from_user_id: userId } : {}),
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

/**
 * A webhook body carrying one delivery status of a message we sent: `recipient_id` the phone
 * number, `recipient_user_id` the BSUID, each when the shopper has it. Beside a BSUID, Meta also
 * lists the recipient in `contacts`, except on failed statuses.
 */
export function statusWebhook(
  wamid: string,
  status: "sent" | "delivered" | "read" | "failed",
  options: WebhookMessageOptions & {
    errors?: { code: number; title: string }[];
    /** The send's biz_opaque_callback_data, echoed (any JSON value: a test may send a wrong one). */
    callbackData?: unknown;
  } = {},
) {
  const { waId, userId } = identity(options);
  return envelope(
    {
      ...(userId !== undefined && status !== "failed"
        ? { contacts: [{ ...(waId !== undefined ? { wa_id: waId } : {}), user_id: userId }] }
        : {}),
      statuses: [
        {
          id: wamid,
          status,
          timestamp: timestamp(options),
          ...(waId !== undefined ? { recipient_id: waId } : {}),
          ...(userId !== undefined ? { recipient_user_id: userId } : {}),
          ...(options.errors ? { errors: options.errors } : {}),
          ...(options.callbackData !== undefined ? { biz_opaque_callback_data: options.callbackData } : {}),
        },
      ],
    },
    options,
  );
}

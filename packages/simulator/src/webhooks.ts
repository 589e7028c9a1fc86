import { createHash, createHmac, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { BusinessNumber } from "./types.ts";

/** Who wrote or is written to: a phone number, a BSUID, or both, as Meta names them. */
export interface Identity {
  name: string;
  waId?: string;
  userId?: string;
}

/** A message from the shopper, in the Cloud API's shape (`messages[]` of a webhook). */
export type InboundMessage =
  | { type: "text"; text: string }
  | { type: "audio"; mediaId: string; mimeType: string; sha256: string; voice: true }
  | { type: "image"; mediaId: string; mimeType: string; sha256: string; caption?: string }
  | { type: "sticker"; mediaId: string; mimeType: string; sha256: string }
  | { type: "location"; latitude: number; longitude: number; name?: string }
  | { type: "button_reply"; replyTo: string; id: string; title: string }
  | { type: "list_reply"; replyTo: string; id: string; title: string; description?: string };

export const signature = (body: string, appSecret: string) =>
  `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`;

/** A wamid like Meta's: "wamid." and base64 of an opaque id. */
export const newWamid = () => `wamid.${randomBytes(30).toString("base64")}`;

/** A W3C trace id the simulator picks for what it sends, so the message's trace can be linked. */
export const newTraceId = () => randomBytes(16).toString("hex");

/** A sampled W3C traceparent in that trace, with a fresh parent span id per request. */
export const traceparent = (traceId: string) => `00-${traceId}-${randomBytes(8).toString("hex")}-01`;

export const sha256Base64 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("base64");

function envelope(business: BusinessNumber, value: Record<string, unknown>) {
  return {
    object: "whatsapp_business_account",
    entry: [
      {
        id: business.wabaId,
        changes: [
          {
            value: {
              messaging_product: "whatsapp",
              metadata: {
                display_phone_number: business.displayPhoneNumber,
                phone_number_id: business.phoneNumberId,
              },
              ...value,
            },
            field: "messages",
          },
        ],
      },
    ],
  };
}

/** `contacts[]`: the profile name with the phone number and/or the BSUID the shopper shows. */
const contacts = (who: Identity) => [
  {
    profile: { name: who.name },
    ...(who.waId ? { wa_id: who.waId } : {}),
    ...(who.userId ? { user_id: who.userId } : {}),
  },
];

/** A message webhook: what Meta posts when a shopper writes (shapes of shared/whatsapp-samples). */
export function messageWebhook(
  business: BusinessNumber,
  from: Identity,
  wamid: string,
  at: Date,
  message: InboundMessage,
) {
  const head = {
    ...(from.waId ? { from: from.waId } : {}),
    ...(from.userId ? { from_user_id: from.userId } : {}),
    id: wamid,
    timestamp: String(Math.floor(at.getTime() / 1000)),
  };
  let body: Record<string, unknown>;
  switch (message.type) {
    case "text":
      body = { text: { body: message.text }, type: "text" };
      break;
    case "audio":
      body = {
        type: "audio",
        audio: { mime_type: message.mimeType, sha256: message.sha256, id: message.mediaId, voice: true },
      };
      break;
    case "image":
      body = {
        type: "image",
        image: {
          ...(message.caption ? { caption: message.caption } : {}),
          mime_type: message.mimeType,
          sha256: message.sha256,
          id: message.mediaId,
        },
      };
      break;
    case "sticker":
      body = {
        type: "sticker",
        sticker: {
          mime_type: message.mimeType,
          sha256: message.sha256,
          id: message.mediaId,
          animated: false,
        },
      };
      break;
    case "location":
      body = {
        type: "location",
        location: {
          latitude: message.latitude,
          longitude: message.longitude,
          ...(message.name ? { name: message.name } : {}),
        },
      };
      break;
    case "button_reply":
    case "list_reply":
      body = {
        context: { from: business.displayPhoneNumber, id: message.replyTo },
        type: "interactive",
        interactive:
          message.type === "button_reply"
            ? { type: "button_reply", button_reply: { id: message.id, title: message.title } }
            : {
                type: "list_reply",
                list_reply: {
                  id: message.id,
                  title: message.title,
                  ...(message.description ? { description: message.description } : {}),
                },
              },
      };
      break;
  }
  return envelope(business, { contacts: contacts(from), messages: [{ ...head, ...body }] });
}

/**
 * A status webhook for a message the bot sent: sent, delivered or read, with the conversation and
 * pricing objects Meta adds (a service conversation: free inside the customer service window). A
 * shopper known only by BSUID is named by `recipient_user_id`; with a phone number, by
 * `recipient_id`, the BSUID beside it in `contacts` (status-delivered-bsuid.json). The send's
 * biz_opaque_callback_data comes back in each, as Meta echoes it.
 */
export function statusWebhook(
  business: BusinessNumber,
  to: Identity,
  wamid: string,
  status: "sent" | "delivered" | "read",
  at: Date,
  conversationId: string,
  callbackData?: string,
) {
  return envelope(business, {
    ...(to.userId ? { contacts: contacts(to) } : {}),
    statuses: [
      {
        id: wamid,
        status,
        timestamp: String(Math.floor(at.getTime() / 1000)),
        ...(to.waId ? { recipient_id: to.waId } : { recipient_user_id: to.userId }),
        ...(callbackData ? { biz_opaque_callback_data: callbackData } : {}),
        ...(status === "read"
          ? {}
          : {
              conversation: { id: conversationId, origin: { type: "service" } },
              pricing: { billable: false, pricing_model: "CBP", category: "service" },
            }),
      },
    ],
  });
}

/** One try at delivering a webhook, and what came of it. */
export interface Attempt {
  attempt: number;
  /** HTTP status, or undefined when there was no answer (refused, reset, timed out). */
  status: number | undefined;
  error?: string;
  ms: number;
}

export interface DeliveryOptions {
  url: string;
  appSecret: string;
  /** Waits between tries: Meta's backoff (minutes to hours, for 7 days), compressed. */
  retrySchedule: readonly number[];
  /** A try not answered within this is a failure, retried. */
  timeoutMs: number;
  traceId: string;
  onAttempt?: (attempt: Attempt) => void;
  signal?: AbortSignal;
}

/**
 * Posts a webhook as Meta does: the raw JSON body signed with the app secret
 * (X-Hub-Signature-256), retried after each answer other than 200, and after no answer within the
 * timeout, until the schedule runs out. Each try carries a traceparent in the trace the caller
 * chose, so what ingress does with it is found from the message. Resolves with every attempt; the
 * last one's status is 200 when it was delivered.
 */
export async function deliverWebhook(body: unknown, options: DeliveryOptions): Promise<Attempt[]> {
  const raw = JSON.stringify(body);
  const attempts: Attempt[] = [];
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    let result: Attempt;
    try {
      const response = await fetch(options.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "facebookexternalua",
          "x-hub-signature-256": signature(raw, options.appSecret),
          traceparent: traceparent(options.traceId),
        },
        body: raw,
        signal: AbortSignal.any([
          AbortSignal.timeout(options.timeoutMs),
          ...(options.signal ? [options.signal] : []),
        ]),
      });
      // Meta reads nothing of the answer but its status.
      await response.arrayBuffer().catch(() => undefined);
      result = { attempt, status: response.status, ms: Math.round(performance.now() - started) };
    } catch (error) {
      const reason =
        error instanceof Error && error.name === "TimeoutError"
          ? `no answer within ${options.timeoutMs} ms`
          : String((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message);
      result = { attempt, status: undefined, error: reason, ms: Math.round(performance.now() - started) };
    }
    attempts.push(result);
    options.onAttempt?.(result);
    if (result.status === 200 || options.signal?.aborted) return attempts;
    const wait = options.retrySchedule[attempt - 1];
    if (wait === undefined) return attempts;
    await sleep(wait, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
    if (options.signal?.aborted) return attempts;
  }
}

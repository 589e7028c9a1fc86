/** The shapes of the UI's HTTP API (contract of issue #24): what the web UI and the browser tests read. */

export type MessageStatus = "sending" | "sent" | "delivered" | "read" | "failed";

export interface ChatMessage {
  /** The wamid. */
  id: string;
  from: "shopper" | "bot";
  /** ISO time on the simulated clock. */
  at: string;
  /** text | image | audio | sticker | location | interactive-button | interactive-list | cta_url | button_reply | list_reply | template */
  type: string;
  text?: string;
  header?: string;
  footer?: string;
  caption?: string;
  /** `/sim/media/<id>` (or the link the bot sent). */
  imageUrl?: string;
  /** A voice note's or audio's bytes (`/sim/media/<id>`), for the player. */
  mediaUrl?: string;
  /** A list reply's row description, as WhatsApp shows it under the title. */
  description?: string;
  buttons?: { id: string; title: string }[];
  list?: {
    button: string;
    sections: { title?: string; rows: { id: string; title: string; description?: string }[] }[];
  };
  cta?: { displayText: string; url: string };
  location?: { latitude: number; longitude: number; name?: string };
  /** The wamid this one answers. */
  replyTo?: string;
  /** Shopper messages: delivered once ingress acknowledged the webhook; bot messages: the statuses sent. */
  status?: MessageStatus;
  /** Webhook deliveries made for a shopper message. */
  attempts?: number;
  error?: string;
  traceUrl?: string;
}

export interface Shopper {
  id: string;
  name: string;
  waId?: string;
  userId?: string;
  phoneNumberId: string;
  messages: ChatMessage[];
}

export type LogKind = "webhook" | "graph" | "toggle" | "clock" | "image";

export interface LogLine {
  at: string;
  kind: LogKind;
  text: string;
  traceUrl?: string;
}

export interface Toggles {
  /** Deliveries of each webhook (Meta delivers at least once; duplicates happen). */
  deliver: 1 | 2 | 3;
  /** Duplicates sent at the same time rather than one after the other. */
  concurrent: boolean;
  /** Wait before answering each Graph API call. */
  ackDelayMs: number;
  /** How the OpenAI-compatible images endpoint answers. */
  image: "ok" | "fail" | "timeout";
  /** Every send answered 130429. */
  rateLimit: boolean;
  /** Every free-form send answered 131047, as if the shopper had last written over 24 hours ago. */
  windowClosed: boolean;
}

export interface BusinessNumber {
  phoneNumberId: string;
  displayPhoneNumber: string;
  wabaId: string;
  /** The shop's name, for the chat's header. */
  name?: string;
}

import { type MessageCatalog, type MessageKey, render } from "./messages.ts";

/**
 * The gift journey as a pure state machine: (conversation, event) -> (conversation, effects).
 * No I/O here; the inbound consumer makes the result durable and runs the effects.
 */
export type State = "new" | "awaiting_recipient" | "awaiting_theme";

export interface Conversation {
  state: State;
  language: string;
  recipient?: string;
}

/** What the shopper sent, reduced to what the journey cares about. */
export type Input =
  | { kind: "text"; text: string }
  | { kind: "reply"; id: string; title: string }
  | { kind: "media"; media: string }
  | { kind: "other"; type: string };

export interface MessageEvent {
  type: "message";
  messageId: string;
  shopperName: string;
  input: Input;
}

export type Event = MessageEvent;

export type Effect = { type: "send_text"; text: string; replyTo?: string };

/**
 * "advanced": the event moved the journey on. "reprompted": the event had no transition from this
 * state; the shopper is asked again and the state stays — an explicit, counted outcome, never a
 * silent no-op.
 */
export type Outcome = "advanced" | "reprompted";

export interface Result {
  conversation: Conversation;
  effects: Effect[];
  outcome: Outcome;
}

export const initialConversation = (language: string): Conversation => ({ state: "new", language });

/** Longest recipient name we accept: long enough for any real name, short enough to print on a gift. */
const MAX_NAME_LENGTH = 60;

type Handler = (conversation: Conversation, event: MessageEvent, say: Say) => Result;
type Say = (key: MessageKey, params?: Record<string, string>) => Effect;

const table: Record<State, Handler> = {
  new: (conversation, event, say) => ({
    conversation: { ...conversation, state: "awaiting_recipient" },
    effects: [event.shopperName ? say("greeting", { shopper: event.shopperName }) : say("greetingAnonymous")],
    outcome: "advanced",
  }),
  awaiting_recipient: (conversation, event, say) => {
    const name = event.input.kind === "text" ? cleanName(event.input.text) : undefined;
    if (!name) return { conversation, effects: [say("askRecipientAgain")], outcome: "reprompted" };
    return {
      conversation: { ...conversation, state: "awaiting_theme", recipient: name },
      effects: [say("askTheme", { recipient: name })],
      outcome: "advanced",
    };
  },
  awaiting_theme: (conversation, _event, say) => ({
    conversation,
    effects: [say("askThemeAgain", { recipient: conversation.recipient ?? "" })],
    outcome: "reprompted",
  }),
};

export function transition(conversation: Conversation, event: Event, catalog: MessageCatalog): Result {
  const say: Say = (key, params) => ({
    type: "send_text",
    text: render(catalog, conversation.language, key, params),
  });
  return table[conversation.state](conversation, event, say);
}

function cleanName(text: string): string | undefined {
  const name = text.replace(/\s+/g, " ").trim();
  return name.length > 0 && name.length <= MAX_NAME_LENGTH ? name : undefined;
}

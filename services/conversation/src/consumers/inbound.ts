import {
  Header,
  type IncomingMessage,
  type OutgoingMessage,
  PermanentError,
  type Publisher,
  type TopicNames,
  TransientError,
} from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { isTransientMongoError } from "@taituri/mongo";
import { inbound, outbound } from "@taituri/proto";
import { trace } from "@taituri/telemetry";
import { Counter, type Registry } from "prom-client";
import {
  type ConversationDoc,
  type ConversationStore,
  type OutboxEntry,
  outboxValue,
} from "../adapters/store.ts";
import { type Input, initialConversation, type Result, transition } from "../domain/machine.ts";
import type { MessageCatalog } from "../domain/messages.ts";

export const OUTBOUND_MESSAGE_TYPE = "application/x-protobuf; messageType=outbound.v1.OutboundMessage";

export interface InboundHandlerDeps {
  store: ConversationStore;
  publisher: Publisher;
  topics: TopicNames;
  catalog: MessageCatalog;
  language: string;
  logger: Logger;
  registry: Registry;
  now?: () => Date;
}

/** Version conflicts in a row before giving up to the consumer's retry: only a storm of writers gets here. */
const MAX_CONFLICTS = 5;

/**
 * Applies each inbound event to its conversation exactly once.
 *
 * Idempotency key: InboundEvent.event_id (the wamid). Enforced by the unique `_id` index of
 * `conversation_inbound_claims` (first sight) and by `appliedEventIds` in the conversation document
 * (written in the same update as the state and the outbox). A crash at any point is safe: before the
 * conversation write nothing happened and the redelivery does it; after it, the redelivery finds the
 * event applied and only publishes what the outbox still holds.
 */
export function createInboundHandler(deps: InboundHandlerDeps): (message: IncomingMessage) => Promise<void> {
  const now = deps.now ?? (() => new Date());
  const handled = new Counter({
    name: "conversation_inbound_events_total",
    help: "Inbound events by outcome (advanced, reprompted, duplicate, ignored)",
    labelNames: ["outcome", "kind"],
    registers: [deps.registry],
  });
  const transitions = new Counter({
    name: "conversation_transitions_total",
    help: "State machine transitions by from-state, to-state and outcome",
    labelNames: ["from", "to", "outcome"],
    registers: [deps.registry],
  });

  async function relay(
    conversationId: string,
    version: number,
    entries: ConversationDoc["outbox"],
  ): Promise<void> {
    if (entries.length === 0) return;
    const byTopic = new Map<string, OutgoingMessage[]>();
    for (const entry of entries) {
      const list = byTopic.get(entry.topic) ?? [];
      list.push({ key: entry.key, value: outboxValue(entry), headers: entry.headers });
      byTopic.set(entry.topic, list);
    }
    for (const [topic, messages] of byTopic) await deps.publisher.send(topic, messages);
    await deps.store.clearOutbox(conversationId, version);
  }

  async function apply(event: inbound.InboundEvent, message: inbound.Message): Promise<void> {
    const at = now();
    const phoneNumberId = event.business?.phoneNumberId ?? "";
    const shopperId = message.from?.waId || message.from?.userId || "";
    const claim = await deps.store.claim(event.eventId, event.conversationId, at);
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const doc = await deps.store.load(event.conversationId);
      if (claim === "applied" || doc?.appliedEventIds.includes(event.eventId)) {
        handled.inc({ outcome: "duplicate", kind: message.content?.$case ?? "none" });
        trace.getActiveSpan()?.addEvent("duplicate", { "event.id": event.eventId });
        if (doc) await relay(doc._id, doc.version, doc.outbox);
        await deps.store.markApplied(event.eventId, at);
        return;
      }
      const before = doc?.conversation ?? initialConversation(deps.language);
      const result: Result = transition(
        before,
        {
          type: "message",
          messageId: message.id,
          shopperName: message.from?.profileName ?? "",
          input: toInput(message),
        },
        deps.catalog,
      );
      const outbox: OutboxEntry[] = result.effects.map((effect, index) => {
        // Deterministic: a replay of this event from this state yields the same id, which the
        // dispatcher's claim deduplicates.
        const id = `${event.eventId}:${index}`;
        const value = outbound.OutboundMessage.encode({
          id,
          conversationId: event.conversationId,
          phoneNumberId,
          to: shopperId,
          replyToMessageId: effect.replyTo ?? "",
          // The shopper's message being answered opened (or renewed) the 24-hour window.
          lastInboundAt: message.sentAt ?? event.receivedAt,
          content: { $case: "text", value: { body: effect.text, previewUrl: false } },
        }).finish();
        return {
          id,
          topic: deps.topics.outbound,
          key: event.conversationId,
          value: Buffer.from(value),
          headers: { [Header.type]: OUTBOUND_MESSAGE_TYPE },
        };
      });
      const committed = await deps.store.commit(
        doc,
        { conversationId: event.conversationId, phoneNumberId, shopperId, conversation: result.conversation },
        event.eventId,
        outbox,
        at,
      );
      if (committed === undefined) continue;
      transitions.inc({ from: before.state, to: result.conversation.state, outcome: result.outcome });
      handled.inc({ outcome: result.outcome, kind: message.content?.$case ?? "none" });
      trace.getActiveSpan()?.addEvent("transition", {
        from: before.state,
        to: result.conversation.state,
        outcome: result.outcome,
      });
      await relay(event.conversationId, committed, [...(doc?.outbox ?? []), ...outbox]);
      await deps.store.markApplied(event.eventId, at);
      return;
    }
    throw new TransientError(`conversation changed ${MAX_CONFLICTS} times while applying ${event.eventId}`);
  }

  return async (incoming) => {
    let event: inbound.InboundEvent;
    try {
      event = inbound.InboundEvent.decode(incoming.value);
    } catch (error) {
      throw new PermanentError(
        `undecodable inbound event: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    if (!event.eventId || !event.conversationId)
      throw new PermanentError("inbound event without event id or conversation id");
    if (event.payload?.$case !== "message") {
      // Delivery statuses and webhook errors are the dispatcher's business. Delivery failures are
      // the journey's, but the state machine does not react to them yet: counted until it does.
      handled.inc({ outcome: "ignored", kind: event.payload?.$case ?? "none" });
      return;
    }
    try {
      await apply(event, event.payload.value);
    } catch (error) {
      if (isTransientMongoError(error))
        throw new TransientError(`conversation store unavailable: ${(error as Error).message}`);
      throw error;
    }
  };
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

import {
  type IncomingMessage,
  PermanentError,
  type Publisher,
  sendInWritersTraces,
  type TopicNames,
  TransientError,
} from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { asTransient, MAX_VERSION_CONFLICTS } from "@taituri/mongo";
import { conversationAttributes, extractContext, injectContext, redact, trace } from "@taituri/telemetry";
import { Counter, type Registry } from "prom-client";
import {
  type ConversationDoc,
  type ConversationStore,
  hasApplied,
  identityKeys,
  type OutboxEntry,
  outboxValue,
  type Timer,
} from "../adapters/store.ts";
import { type Catalog, shopFor } from "../domain/catalog.ts";
import type { Countries } from "../domain/countries.ts";
import { type Context, funnelStep, initialConversation, transition } from "../domain/machine.ts";
import type { MessageCatalog } from "../domain/messages.ts";
import { type Arrival, contactOf, decode, nextContact, toOutbox } from "./codec.ts";

export interface ConversationHandlerDeps {
  store: ConversationStore;
  publisher: Publisher;
  topics: TopicNames;
  catalog: Catalog;
  messages: MessageCatalog;
  countries: Countries;
  sessionTtlMs: number;
  generationDeadlineMs: number;
  logger: Logger;
  registry: Registry;
  now?: () => Date;
  /**
   * Crash-testing: called at each step of applying a message (see CONVERSATION_CRASH_AT).
   * "after_claim" comes between the version claim and the update, so never for a conversation's
   * first message, whose claim is its insert.
   */
  onStep?: (step: "after_claim" | "after_commit") => void;
}

/**
 * Applies every event of a conversation — the shopper's messages (inbound topic), generation
 * results, payment events and fired watchdogs — exactly once, through the pure state machine.
 *
 * Idempotency key: the event id (the wamid for messages; "generation:<round>:<outcome>",
 * "payment:<order>:<outcome>", "timer:<id>" for the rest). Enforced by the unique `eventId` index of
 * `conversation_versions`, whose document claims the version that applies the event and carries its
 * write (a conversation's first event: the conversation's unique `_id`, see `firstEventId`), and
 * by `appliedEventIds` in the conversation document, written in the same single-document update as
 * the new state, its timers and its outbox. A crash at any point replays safely: before the claim
 * nothing happened; between the claim and the update, the redelivery finishes the claimed write;
 * after it, the redelivery finds the event applied and only publishes what the outbox still holds.
 * Outgoing ids are derived from the event id, so the dispatcher, the generation service and the
 * payment service deduplicate too.
 */
export function createConversationHandler(deps: ConversationHandlerDeps) {
  const now = deps.now ?? (() => new Date());
  const handled = new Counter({
    name: "conversation_events_total",
    help: "Events by kind and outcome (advanced, reprompted, stale, ignored, command, duplicate)",
    labelNames: ["kind", "outcome"],
    registers: [deps.registry],
  });
  const transitions = new Counter({
    name: "conversation_transitions_total",
    help: "State machine transitions by from-state, to-state and outcome",
    labelNames: ["from", "to", "outcome"],
    registers: [deps.registry],
  });
  const funnel = new Counter({
    name: "conversation_funnel_total",
    help: "Journeys reaching each step: started, named, themed, styled, generated, chosen, addressed, paid",
    labelNames: ["step"],
    registers: [deps.registry],
  });

  /**
   * Conversation versions whose whole outbox this process has published. The next version leaves
   * those entries out; a version we have no record of (another replica's, or from before a restart)
   * carries them on, and they are sent again (the dispatcher's and the services' claims drop them).
   * This replaces a write per message that emptied the outbox, and which FerretDB could have
   * applied over a newer version (see VersionDoc in the store).
   */
  const relayed = new Map<string, number>();
  const RELAYED_MEMORY = 20_000;
  /**
   * Bumped when deleted conversations are forgotten (`forgetRelayed`): a conversation erased and
   * started anew counts its versions from 1 again, and an old "version 7 relayed" must not stop its
   * new version 7's outbox from being carried on.
   */
  let relayedEpoch = 0;
  /**
   * Publishes in flight, by conversation. Events of one conversation arrive on several topics
   * (messages, generation results, payment events) and are handled concurrently, so the reply to
   * an outbox entry (a payment link to a payment request) can be handled before the publish of the
   * entry has returned. Deciding what to carry on waits for that publish: otherwise the entry,
   * not yet in `relayed`, was carried into the next version and sent twice.
   */
  const relaying = new Map<string, Promise<unknown>>();
  const publishSettled = async (conversationId: string) => {
    await relaying.get(conversationId)?.catch(() => undefined);
  };

  async function relay(
    conversationId: string,
    version: number,
    entries: ConversationDoc["outbox"],
  ): Promise<void> {
    if (entries.length === 0) return;
    const epoch = relayedEpoch;
    // From the trace of the event that wrote them: an entry carried over from an earlier version,
    // or relayed again after a crash, stays a child of the event that caused it, not of whichever
    // event happens to publish it.
    const sending = sendInWritersTraces(
      deps.publisher,
      entries.map((entry) => ({
        topic: entry.topic,
        key: entry.key,
        id: entry.id,
        value: outboxValue(entry),
        headers: entry.headers,
      })),
    );
    relaying.set(conversationId, sending);
    try {
      await sending;
    } finally {
      if (relaying.get(conversationId) === sending) relaying.delete(conversationId);
    }
    if (epoch !== relayedEpoch) return;
    relayed.delete(conversationId);
    relayed.set(conversationId, version);
    if (relayed.size > RELAYED_MEMORY) relayed.delete(relayed.keys().next().value ?? "");
  }

  /** An event applied before: counted, and whatever its conversation's outbox may still hold is published. */
  async function duplicate(doc: ConversationDoc, kind: string, eventId: string): Promise<void> {
    handled.inc({ kind, outcome: "duplicate" });
    trace.getActiveSpan()?.addEvent("duplicate", { "event.id": redact(eventId) });
    await publishSettled(doc._id);
    if (relayed.get(doc._id) !== doc.version) await relay(doc._id, doc.version, doc.outbox);
  }

  /**
   * The conversation a shopper's message belongs to. Its Kafka key names the shopper by the BSUID
   * when the webhook has one, else by phone number (ingress); a shopper whose key is not yet a
   * conversation of its own (a new BSUID after a number change; a phone number first seen alone)
   * is led to theirs by the ids it claimed (store.route).
   */
  async function route(arrival: Arrival, at: Date): Promise<Arrival> {
    if (arrival.event.type !== "message" || deps.store.cached(arrival.conversationId)) return arrival;
    const ids = identityKeys(arrival.phoneNumberId ?? "", arrival.contact ?? {});
    const conversationId = await deps.store.route(arrival.conversationId, ids, at);
    return { ...arrival, conversationId, idsClaimed: true };
  }

  async function apply(received: Arrival): Promise<void> {
    const at = now();
    const arrival = await route(received, at);
    const kind =
      arrival.event.type === "message" ? `message.${arrival.event.input.kind}` : arrival.event.type;
    const active = trace.getActiveSpan();
    if (active?.isRecording()) active.setAttributes(conversationAttributes(arrival.conversationId));
    // What to build on, without a read when possible: the version this process last wrote or read
    // (deps.store.cached); for a shopper's message with none, no conversation yet (a new shopper),
    // whose insert fails if one exists after all. Either guess, if wrong, loses its commit (the
    // version claim or the insert refuses it), and the loop below reloads. Other events need the
    // stored conversation ("no record" ignores them).
    const cached = deps.store.cached(arrival.conversationId);
    let doc: ConversationDoc | null =
      cached ?? (arrival.event.type === "message" ? null : await deps.store.load(arrival.conversationId));
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
      if (conflicts > 0) doc = await deps.store.load(arrival.conversationId);
      // A conversation, stored or remembered, that lists the event has applied it: versions only
      // grow. One that does not may be stale, or the event older than its memory: the commit's
      // claim on the event (VersionDoc) decides.
      if (doc && hasApplied(doc, arrival.eventId)) {
        // A redelivery after a crash may find the event applied but its ids' claims not made
        // (those route made on the way here excepted).
        if (arrival.event.type === "message") {
          const made = arrival.idsClaimed ? identityKeys(doc.phoneNumberId, arrival.contact ?? {}) : [];
          const missing = identityKeys(doc.phoneNumberId, contactOf(doc)).filter((id) => !made.includes(id));
          if (missing.length > 0) await deps.store.claim(missing, doc._id, at);
        }
        await duplicate(doc, kind, arrival.eventId);
        return;
      }
      if (!doc && arrival.event.type !== "message") {
        // A result for a conversation we have no record of: nothing to apply it to.
        handled.inc({ kind, outcome: "ignored" });
        return;
      }
      const phoneNumberId = doc?.phoneNumberId ?? arrival.phoneNumberId;
      const shopperId = doc?.shopperId || arrival.shopperId;
      const known = doc ? contactOf(doc) : {};
      const contact = nextContact(known, arrival);
      const shop = shopFor(deps.catalog, phoneNumberId ?? "");
      if (!shop || !phoneNumberId || !shopperId) {
        throw new PermanentError(`no shop serves phone number id ${phoneNumberId ?? "(none)"}`);
      }
      const ctx: Context = {
        conversationId: arrival.conversationId,
        shop,
        messages: deps.messages,
        countries: deps.countries,
        now: at.getTime(),
        sessionTtlMs: deps.sessionTtlMs,
        generationDeadlineMs: deps.generationDeadlineMs,
      };
      const before = doc?.conversation ?? initialConversation(shop);
      const result = transition(before, arrival.event, ctx);
      const lastInboundAt =
        arrival.sentAt && (!doc?.lastInboundAt || arrival.sentAt > doc.lastInboundAt)
          ? arrival.sentAt
          : doc?.lastInboundAt;
      let timers: Timer[] = (doc?.timers ?? []).filter((t) => t.id !== arrival.firedTimerId);
      const outbox: OutboxEntry[] = [];
      // The trace of this event, stored with its effects so that whoever relays them publishes
      // them as its children.
      const traceHeaders = injectContext();
      result.effects.forEach((effect, index) => {
        const id = `${arrival.eventId}:${index}`;
        const entry = toOutbox(effect, id, deps.topics, {
          conversationId: arrival.conversationId,
          phoneNumberId,
          shopperId,
          contact,
          shopId: shop.id,
          lastInboundAt,
          at,
        });
        if (entry) outbox.push({ ...entry, headers: { ...entry.headers, ...traceHeaders } });
        if (effect.type === "schedule_timer")
          timers = [...timers, { id: effect.timerId, roundId: effect.roundId, dueAt: new Date(effect.at) }];
        if (effect.type === "cancel_timer") timers = timers.filter((t) => t.id !== effect.timerId);
      });
      // Designs delivered: later messages of this journey link to this trace (see designsTrace).
      const designsTrace =
        arrival.event.type === "generation_completed" && result.outcome === "advanced"
          ? traceHeaders.traceparent
          : undefined;
      if (doc?.designsTrace && arrival.event.type === "message") linkTo(doc.designsTrace);
      if (doc) await publishSettled(doc._id);
      const carried = doc && relayed.get(doc._id) !== doc.version ? doc.outbox : [];
      // Ids this conversation has not claimed yet (a phone number seen for the first time, the
      // new ones a number change names), so that later messages under them find it. Beside the
      // commit, not after it: the conversation id is settled (route), and a claim is idempotent, so
      // a redelivery after a crash claims again.
      const claimed = [
        ...identityKeys(phoneNumberId, known),
        ...(arrival.idsClaimed ? identityKeys(phoneNumberId, arrival.contact ?? {}) : []),
      ];
      const fresh = identityKeys(phoneNumberId, contact).filter((id) => !claimed.includes(id));
      const [committed] = await Promise.all([
        deps.store.commit(
          doc,
          {
            conversationId: arrival.conversationId,
            phoneNumberId,
            shopperId,
            contact,
            conversation: result.conversation,
            timers,
            ...(lastInboundAt ? { lastInboundAt } : {}),
            ...(designsTrace ? { designsTrace } : {}),
          },
          arrival.eventId,
          [...carried, ...outbox],
          at,
          arrival.event.type === "message" ? () => deps.onStep?.("after_claim") : undefined,
        ),
        fresh.length > 0 ? deps.store.claim(fresh, arrival.conversationId, at) : undefined,
      ]);
      if (committed === "conflict") continue;
      if (committed === "duplicate") {
        // Applied by an earlier delivery; its write is finished now if it was not.
        const stored = await deps.store.load(arrival.conversationId);
        if (stored) await duplicate(stored, kind, arrival.eventId);
        return;
      }
      if (arrival.event.type === "message") deps.onStep?.("after_commit");
      const to = result.conversation.state;
      transitions.inc({ from: before.state, to, outcome: result.outcome });
      handled.inc({ kind, outcome: result.outcome });
      const step = funnelStep(before.state, to);
      if (step) funnel.inc({ step });
      trace
        .getActiveSpan()
        ?.addEvent("transition", { from: before.state, to, outcome: result.outcome, event: kind });
      await relay(arrival.conversationId, committed, [...carried, ...outbox]);
      return;
    }
    throw new TransientError(
      `conversation changed ${MAX_VERSION_CONFLICTS} times while applying ${arrival.eventId}`,
    );
  }

  async function guarded(arrival: Arrival): Promise<void> {
    try {
      await apply(arrival);
    } catch (error) {
      throw asTransient(error, "conversation store");
    }
  }

  return {
    /** Forgets which versions were relayed: conversations were deleted (see `relayedEpoch`). */
    forgetRelayed(): void {
      relayedEpoch += 1;
      relayed.clear();
    },

    /** The Kafka handler: the inbound topic, generation results and payment events. */
    async handle(incoming: IncomingMessage): Promise<void> {
      let arrival: Arrival | undefined;
      try {
        arrival = decode(incoming, deps.topics);
      } catch (error) {
        if (error instanceof PermanentError) throw error;
        throw new PermanentError(
          `undecodable event on ${incoming.topic}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      if (!arrival) {
        handled.inc({ kind: "other", outcome: "ignored" });
        return;
      }
      await guarded(arrival);
    },

    /** Fires the watchdogs that are due; returns how many. */
    async fireDueTimers(limit = 100): Promise<number> {
      const at = now();
      let fired = 0;
      for (const doc of await deps.store.due(at, limit)) {
        for (const timer of doc.timers.filter((t) => t.dueAt <= at)) {
          await guarded({
            eventId: `timer:${timer.id}`,
            conversationId: doc._id,
            event: { type: "generation_deadline", roundId: timer.roundId },
            firedTimerId: timer.id,
          });
          fired += 1;
        }
      }
      return fired;
    },
  };
}

/**
 * Links the message being handled to the trace that delivered the journey's designs: choosing and
 * buying are traces of their own (one per message), and the link takes an operator from the
 * checkout's trace back to the round that made what is being bought.
 */
function linkTo(traceparent: string): void {
  const span = trace.getActiveSpan();
  const target = trace.getSpanContext(extractContext({ traceparent }));
  if (!span?.isRecording() || !target || target.traceId === span.spanContext().traceId) return;
  span.addLink({ context: target, attributes: { "taituri.link": "designs" } });
}

import {
  decodeRecord,
  encodeRecord,
  type IncomingMessage,
  type Publisher,
  Records,
  type TopicNames,
} from "@taituri/kafka";
import { asTransient } from "@taituri/mongo";
import { inbound } from "@taituri/proto";
import { Counter, type Registry } from "prom-client";
import type { IngressStore } from "../adapters/store.ts";
import { deliveryFailureEvent } from "../domain/webhook.ts";
import type { CallbackData } from "../outbound/callback-data.ts";

const RANK: Partial<Record<inbound.StatusKind, { name: string; rank: number }>> = {
  [inbound.StatusKind.STATUS_KIND_SENT]: { name: "sent", rank: 1 },
  [inbound.StatusKind.STATUS_KIND_DELIVERED]: { name: "delivered", rank: 2 },
  [inbound.StatusKind.STATUS_KIND_READ]: { name: "read", rank: 3 },
  [inbound.StatusKind.STATUS_KIND_PLAYED]: { name: "played", rank: 4 },
  [inbound.StatusKind.STATUS_KIND_FAILED]: { name: "failed", rank: 5 },
};

/**
 * Consumes the inbound topic for delivery statuses (its own consumer group, beside the
 * conversation's) and keeps each sent message's delivery state. A failed status also tells the
 * conversation, like a send Meta refused outright.
 *
 * Idempotency: the update (IngressStore.applyStatus) is conditional on a lower rank, so a replayed
 * status changes nothing; the sent record it may write is keyed by the outbound id (unique `_id`
 * of `ingress_outbound_sent`); the failure event's id is derived from the outbound id and deduplicated
 * by the conversation.
 */
export function createStatusHandler(deps: {
  store: IngressStore;
  publisher: Publisher;
  topics: TopicNames;
  registry: Registry;
  /** Opens the sealed outbound id a status echoes (outbound/callback-data.ts). */
  callbackData: CallbackData;
  now?: () => Date;
}): (message: IncomingMessage) => Promise<void> {
  const { store } = deps;
  const now = deps.now ?? (() => new Date());
  const counted = new Counter({
    name: "outbound_statuses_total",
    help: "Delivery statuses by status and outcome (applied, stale) and Meta error code",
    labelNames: ["status", "outcome", "code"],
    registers: [deps.registry],
  });
  const recovered = new Counter({
    name: "outbound_sent_recorded_from_status_total",
    help: "Sends recorded from their status because the dispatcher had not recorded them (it died, or its record failed): each one a send a take-over would have repeated",
    registers: [deps.registry],
  });

  /**
   * Any status of a message proves Meta took it. A dispatcher that died between Meta's answer and
   * its "sent" record left the claim sending, and a take-over would send it again once the lease
   * ran out: the status, which names the outbound id it was sent with (biz_opaque_callback_data,
   * sealed), records it first. Only for a claim of ours, under its own conversation id (erase finds it by
   * that). A record already there is the dispatcher's own: the same message.
   */
  async function recordFromStatus(outboundId: string, wamid: string) {
    const known = await store.findSent(outboundId);
    if (known) return known;
    const claim = await store.findClaim(outboundId);
    if (!claim) return null;
    const record = { _id: outboundId, wamid, conversationId: claim.conversationId, at: now() };
    if ((await store.recordSent(record)) === "inserted") recovered.inc();
    return record;
  }

  async function apply(event: inbound.InboundEvent, status: inbound.Status): Promise<void> {
    const kind = RANK[status.kind];
    if (!kind) {
      counted.inc({ status: "unknown", outcome: "ignored", code: "" });
      return;
    }
    const code = status.errors[0]?.code;
    const labels = { status: kind.name, code: code === undefined ? "" : String(code) };
    // Before the status is applied: a retry after a failed record would find the status stale.
    // Another app on the account may set its own: only a value we sealed names an outbound id.
    const outboundId = status.callbackData ? deps.callbackData.open(status.callbackData) : undefined;
    const recorded = outboundId ? await recordFromStatus(outboundId, status.messageId) : undefined;
    const outcome = await store.applyStatus({
      _id: status.messageId,
      status: kind.name,
      rank: kind.rank,
      at: status.at ?? now(),
      conversationId: event.conversationId,
      errors: status.errors.map((e) => ({ code: e.code, title: e.title })),
      updatedAt: now(),
    });
    counted.inc({ ...labels, outcome });
    if (outcome === "stale" || kind.name !== "failed") return;
    const send = recorded === undefined ? await store.findSentByWamid(status.messageId) : recorded;
    if (!send) return;
    const failure = deliveryFailureEvent(
      {
        outboundId: send._id,
        conversationId: send.conversationId,
        phoneNumberId: event.business?.phoneNumberId ?? "",
      },
      inbound.DeliveryFailureReason.DELIVERY_FAILURE_REASON_REJECTED,
      status.errors.map((e) => `${e.code} ${e.title}`).join("; "),
      code ?? 0,
      now(),
    );
    await deps.publisher.send(deps.topics.inbound, [
      {
        key: send.conversationId,
        id: failure.eventId,
        ...encodeRecord(Records.inboundEvent, failure),
      },
    ]);
  }

  return async (incoming) => {
    const event = decodeRecord(Records.inboundEvent, incoming);
    if (event.payload?.$case !== "status") return;
    try {
      await apply(event, event.payload.value);
    } catch (error) {
      throw asTransient(error, "status store");
    }
  };
}

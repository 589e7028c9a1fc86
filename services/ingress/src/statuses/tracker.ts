import {
  decodeRecord,
  encodeRecord,
  type IncomingMessage,
  type Publisher,
  Records,
  type TopicNames,
  TransientError,
} from "@taituri/kafka";
import { type CollectionIndexes, isDuplicateKey, isTransientMongoError } from "@taituri/mongo";
import { inbound } from "@taituri/proto";
import type { Collection, Db } from "mongodb";
import { Counter, type Registry } from "prom-client";
import { deliveryFailureEvent } from "../domain/webhook.ts";
import { SENT_COLLECTION } from "../outbound/dispatcher.ts";

/**
 * The delivery state of one message we sent, keyed by Meta's wamid. Statuses can arrive late and
 * out of order (a delivered after the read); the rank makes every update monotonic: a status only
 * replaces a lower one. Failed is terminal.
 */
interface DeliveryState {
  _id: string;
  status: string;
  rank: number;
  at: Date;
  conversationId: string;
  errors: { code: number; title: string }[];
  updatedAt: Date;
}

export const STATUSES_COLLECTION = "ingress_message_statuses";
export const statusIndexes: CollectionIndexes[] = [
  { collection: STATUSES_COLLECTION, indexes: [{ key: { conversationId: 1 }, name: "conversationId" }] },
];

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
 * Idempotency: the update is conditional on a lower rank, so a replayed status changes nothing; the
 * failure event's id is derived from the outbound id and deduplicated by the conversation.
 */
export function createStatusHandler(deps: {
  db: Db;
  publisher: Publisher;
  topics: TopicNames;
  registry: Registry;
  now?: () => Date;
}): (message: IncomingMessage) => Promise<void> {
  const states: Collection<DeliveryState> = deps.db.collection<DeliveryState>(STATUSES_COLLECTION);
  const sent = deps.db.collection<{ _id: string; wamid: string; conversationId: string }>(SENT_COLLECTION);
  const now = deps.now ?? (() => new Date());
  const counted = new Counter({
    name: "outbound_statuses_total",
    help: "Delivery statuses by status and outcome (applied, stale) and Meta error code",
    labelNames: ["status", "outcome", "code"],
    registers: [deps.registry],
  });

  async function apply(event: inbound.InboundEvent, status: inbound.Status): Promise<void> {
    const kind = RANK[status.kind];
    if (!kind) {
      counted.inc({ status: "unknown", outcome: "ignored", code: "" });
      return;
    }
    const code = status.errors[0]?.code;
    const labels = { status: kind.name, code: code === undefined ? "" : String(code) };
    try {
      await states.updateOne(
        { _id: status.messageId, rank: { $lt: kind.rank } },
        {
          $set: {
            status: kind.name,
            rank: kind.rank,
            at: status.at ?? now(),
            conversationId: event.conversationId,
            errors: status.errors.map((e) => ({ code: e.code, title: e.title })),
            updatedAt: now(),
          },
        },
        { upsert: true },
      );
    } catch (error) {
      // The upsert's insert collided with the existing document: it holds an equal or later status.
      if (!isDuplicateKey(error)) throw error;
      counted.inc({ ...labels, outcome: "stale" });
      return;
    }
    counted.inc({ ...labels, outcome: "applied" });
    if (kind.name !== "failed") return;
    const send = await sent.findOne({ wamid: status.messageId });
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
      if (isTransientMongoError(error))
        throw new TransientError(`status store unavailable: ${(error as Error).message}`);
      throw error;
    }
  };
}

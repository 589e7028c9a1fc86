import { backoffMs, type IncomingMessage, PermanentError, TransientError } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { type CollectionIndexes, isDuplicateKey, isTransientMongoError } from "@taituri/mongo";
import { outbound } from "@taituri/proto";
import type { Collection, Db } from "mongodb";
import { Counter, Histogram, type Registry } from "prom-client";
import { type GraphApiClient, GraphApiError } from "../adapters/graph-api.ts";
import { InvalidOutboundMessage, toGraphPayload } from "./payload.ts";

/**
 * One document per outbound message id: the dispatcher's claim on sending it.
 *
 * Idempotency key: OutboundMessage.id. Enforced by the unique `_id` index of `ingress_outbound_sends`.
 * A redelivered event finds the claim and sends nothing. A claim whose sender died is taken over
 * once its lease has expired; the one case that can still send twice is a sender that crashed
 * after Meta accepted the message and before it recorded so (Meta's send API takes no idempotency
 * key), which costs at most one duplicate per crash.
 */
interface SendClaim {
  _id: string;
  conversationId: string;
  status: "sending" | "sent" | "failed";
  leaseUntil: Date;
  attempts: number;
  wamid?: string;
  error?: { status: number; code?: number; message: string };
  createdAt: Date;
  updatedAt: Date;
}

export const SENDS_COLLECTION = "ingress_outbound_sends";

export const dispatcherIndexes: CollectionIndexes[] = [
  // Statuses arrive with the wamid: they find the send by it.
  { collection: SENDS_COLLECTION, indexes: [{ key: { wamid: 1 }, name: "wamid", sparse: true }] },
];

export interface DispatcherDeps {
  db: Db;
  graph: GraphApiClient;
  logger: Logger;
  registry: Registry;
  leaseMs: number;
  now?: () => Date;
}

export function createOutboundHandler(deps: DispatcherDeps): (message: IncomingMessage) => Promise<void> {
  const sends: Collection<SendClaim> = deps.db.collection<SendClaim>(SENDS_COLLECTION);
  const now = deps.now ?? (() => new Date());
  const sent = new Counter({
    name: "outbound_sends_total",
    help: "Outbound messages by type and outcome (sent, duplicate, failed, retry) and Meta error code",
    labelNames: ["type", "outcome", "code"],
    registers: [deps.registry],
  });
  const latency = new Histogram({
    name: "outbound_send_seconds",
    help: "Graph API send-message latency",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [deps.registry],
  });

  /** Takes the claim, or says why not: "done" (already sent or failed) or "busy" (a live lease). */
  async function claim(message: outbound.OutboundMessage): Promise<"claimed" | "done" | "busy"> {
    const at = now();
    const leaseUntil = new Date(at.getTime() + deps.leaseMs);
    try {
      await sends.insertOne({
        _id: message.id,
        conversationId: message.conversationId,
        status: "sending",
        leaseUntil,
        attempts: 1,
        createdAt: at,
        updatedAt: at,
      });
      return "claimed";
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
    const takenOver = await sends.findOneAndUpdate(
      { _id: message.id, status: "sending", leaseUntil: { $lt: at } },
      { $set: { leaseUntil, updatedAt: at }, $inc: { attempts: 1 } },
    );
    if (takenOver) return "claimed";
    const existing = await sends.findOne({ _id: message.id });
    return existing && existing.status !== "sending" ? "done" : "busy";
  }

  return async (incoming) => {
    let message: outbound.OutboundMessage;
    try {
      message = outbound.OutboundMessage.decode(incoming.value);
    } catch (error) {
      throw new PermanentError(
        `undecodable outbound message: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    const type = message.content?.$case ?? "none";
    let payload: Record<string, unknown>;
    try {
      payload = toGraphPayload(message);
    } catch (error) {
      if (error instanceof InvalidOutboundMessage) {
        sent.inc({ type, outcome: "invalid", code: "" });
        throw new PermanentError(error.message);
      }
      throw error;
    }
    let claimed: Awaited<ReturnType<typeof claim>>;
    try {
      claimed = await claim(message);
    } catch (error) {
      if (isTransientMongoError(error))
        throw new TransientError(`claim store unavailable: ${(error as Error).message}`);
      throw error;
    }
    if (claimed === "done") {
      sent.inc({ type, outcome: "duplicate", code: "" });
      deps.logger.debug({ outboundId: message.id }, "outbound message already handled");
      return;
    }
    if (claimed === "busy")
      throw new TransientError(`outbound ${message.id} is being sent by another dispatcher`);

    const stopTimer = latency.startTimer();
    try {
      const result = await deps.graph.sendMessage(message.phoneNumberId, payload);
      stopTimer();
      // Meta has the message now. Failing to record that would make a retry send it again once
      // the lease expires, so the write is retried here, in place, before giving up.
      await persistently(() =>
        sends.updateOne(
          { _id: message.id },
          { $set: { status: "sent", wamid: result.messageId, updatedAt: now() } },
        ),
      );
      sent.inc({ type, outcome: "sent", code: "" });
    } catch (error) {
      stopTimer();
      if (!(error instanceof GraphApiError)) throw error;
      const code = error.code === undefined ? "" : String(error.code);
      if (error.transient) {
        // Give the claim back at once: the retry (this consumer, in order) must not wait out a lease.
        await sends.updateOne(
          { _id: message.id, status: "sending" },
          { $set: { leaseUntil: new Date(0), updatedAt: now() } },
        );
        sent.inc({ type, outcome: "retry", code });
        throw new TransientError(error.message);
      }
      await sends.updateOne(
        { _id: message.id },
        {
          $set: {
            status: "failed",
            error: {
              status: error.status,
              ...(error.code !== undefined ? { code: error.code } : {}),
              message: error.message,
            },
            updatedAt: now(),
          },
        },
      );
      sent.inc({ type, outcome: "failed", code });
      throw new PermanentError(error.message);
    }
  };
}

/** Attempts a store write up to 8 times over about 20 s, for writes that must not be lost. */
async function persistently<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (attempt >= 8 || !isTransientMongoError(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, 100, 5000)));
    }
  }
}

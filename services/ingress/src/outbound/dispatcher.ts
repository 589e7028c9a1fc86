import {
  decodeRecord,
  encodeRecord,
  type IncomingMessage,
  PermanentError,
  type Publisher,
  Records,
  type TopicNames,
  TransientError,
} from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { asTransient, type ImageStore, retryWrite } from "@taituri/mongo";
import { inbound, type outbound } from "@taituri/proto";
import { trace } from "@taituri/telemetry";
import { Counter, Histogram, type Registry } from "prom-client";
import { BSUID_RECIPIENT_UNSUPPORTED, type GraphApiClient, GraphApiError } from "../adapters/graph-api.ts";
import type { IngressStore, SendClaim } from "../adapters/store.ts";
import { deliveryFailureEvent } from "../domain/webhook.ts";
import type { CallbackData } from "./callback-data.ts";
import type { Pacer } from "./pacer.ts";
import { addressing, InvalidOutboundMessage, isFreeForm, toGraphPayload } from "./payload.ts";

const Reason = inbound.DeliveryFailureReason;

/** WhatsApp's customer service window: free-form messages only this long after the shopper last wrote. */
export const SERVICE_WINDOW_MS = 24 * 3600 * 1000;

export interface DispatcherDeps {
  store: IngressStore;
  graph: GraphApiClient;
  images: ImageStore;
  pacer: Pacer;
  /** Where delivery failures go for the conversation to react to (the inbound topic). */
  publisher: Publisher;
  topics: TopicNames;
  logger: Logger;
  registry: Registry;
  leaseMs: number;
  /** Seals the outbound id into each send's biz_opaque_callback_data (statuses/tracker.ts opens it). */
  callbackData: CallbackData;
  now?: () => Date;
}

/**
 * Consumes the outbound topic and sends each message through the Graph API.
 *
 * Idempotency key: OutboundMessage.id. Enforced by the unique `_id` index of `ingress_outbound_sends`
 * (the claim, IngressStore.insertClaim). A redelivered event finds the claim and sends nothing. A
 * claim whose sender died is taken over once its lease has expired. Meta's send API takes no
 * idempotency key; a sender that crashed after Meta accepted the message and before it recorded so
 * is covered by the message's statuses, which echo the outbound id (biz_opaque_callback_data, see
 * statuses/tracker.ts) and record the send before the lease runs out. Only a message none of whose
 * statuses came within the lease can be sent twice, at most once per crash. A send
 * to a BSUID that Meta refuses (131062) is sent again to the phone number under the same claim:
 * Meta took nothing the first time, so the second call is still the only one that can deliver.
 */
export function createOutboundHandler(deps: DispatcherDeps): (message: IncomingMessage) => Promise<void> {
  const { store } = deps;
  const now = deps.now ?? (() => new Date());
  const sent = new Counter({
    name: "outbound_sends_total",
    help: "Outbound messages by type, outcome (sent, duplicate, invalid, outside_window, rejected, retry, bsuid_refused), Meta error code and recipient (bsuid, phone, none)",
    labelNames: ["type", "outcome", "code", "recipient"],
    registers: [deps.registry],
  });
  const count = (
    message: outbound.OutboundMessage,
    outcome: string,
    code: number | undefined,
    address = addressing(message),
  ) =>
    sent.inc({
      type: message.content?.$case ?? "none",
      outcome,
      code: code === undefined ? "" : String(code),
      recipient: address ?? "none",
    });
  const latency = new Histogram({
    name: "outbound_send_seconds",
    help: "Graph API send-message latency",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [deps.registry],
  });
  const paced = new Histogram({
    name: "outbound_pacing_wait_seconds",
    help: "Time a message waited for its business number's throughput budget",
    buckets: [0, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [deps.registry],
  });

  /**
   * Takes the claim, or says why not: "done" (already sent or failed) or "busy" (a live lease). A
   * claim taken over comes with what the earlier attempts left in it.
   */
  async function claim(
    message: outbound.OutboundMessage,
  ): Promise<{ state: "claimed"; doc?: SendClaim } | { state: "busy" } | { state: "done"; doc: SendClaim }> {
    const at = now();
    const leaseUntil = new Date(at.getTime() + deps.leaseMs);
    const first = await store.insertClaim({
      _id: message.id,
      conversationId: message.conversationId,
      status: "sending",
      leaseUntil,
      attempts: 1,
      createdAt: at,
      updatedAt: at,
    });
    if (first === "inserted") return { state: "claimed" };
    const existing = await store.findClaim(message.id);
    if (!existing) return { state: "busy" };
    if (existing.status !== "sending") return { state: "done", doc: existing };
    if (await store.findSent(message.id)) return { state: "done", doc: existing };
    if (existing.leaseUntil >= at) return { state: "busy" };
    const attempt = existing.attempts + 1;
    if (!(await store.startAttempt(message.id, attempt, at))) return { state: "busy" };
    await store.renewLease(message.id, leaseUntil, attempt, at);
    return { state: "claimed", doc: existing };
  }

  /** Tells the conversation this message will not be delivered (see deliveryFailureEvent). */
  async function reportFailure(
    message: outbound.OutboundMessage,
    reason: inbound.DeliveryFailureReason,
    detail: string,
    code = 0,
  ): Promise<void> {
    const event = deliveryFailureEvent(
      {
        outboundId: message.id,
        conversationId: message.conversationId,
        phoneNumberId: message.phoneNumberId,
      },
      reason,
      detail,
      code,
      now(),
    );
    await deps.publisher.send(deps.topics.inbound, [
      {
        key: message.conversationId,
        id: event.eventId,
        ...encodeRecord(Records.inboundEvent, event),
      },
    ]);
  }

  /**
   * A message that will not be sent: counted, reported to the conversation, and returned as the
   * PermanentError that dead-letters it.
   */
  async function refuse(
    message: outbound.OutboundMessage,
    outcome: "invalid" | "outside_window" | "rejected",
    reason: inbound.DeliveryFailureReason,
    detail: string,
    code?: number,
    address = addressing(message),
  ): Promise<PermanentError> {
    count(message, outcome, code, address);
    await reportFailure(message, reason, detail, code ?? 0);
    return new PermanentError(detail);
  }

  /** The media id for a stored image: uploaded once per outbound message, remembered in the claim. */
  async function mediaIdFor(message: outbound.OutboundMessage, imageId: string): Promise<string> {
    const doc = await store.findClaim(message.id);
    if (doc?.mediaId) return doc.mediaId;
    const image = await deps.images.get(imageId);
    if (!image)
      throw new InvalidOutboundMessage(`outbound ${message.id}: stored image ${imageId} does not exist`);
    const mediaId = await deps.graph.uploadMedia(message.phoneNumberId, image);
    await store.rememberMediaId(message.id, mediaId, now());
    return mediaId;
  }

  async function dispatch(message: outbound.OutboundMessage): Promise<void> {
    const type = message.content?.$case ?? "none";
    const span = trace.getActiveSpan();
    span?.setAttribute("whatsapp.message.type", type);
    // Content and window are checked before any claim or call: what cannot be sent is refused
    // here, with the reason, and never reaches Meta.
    try {
      toGraphPayload(message, { mediaId: "to-be-uploaded" });
    } catch (error) {
      if (!(error instanceof InvalidOutboundMessage)) throw error;
      throw await refuse(message, "invalid", Reason.DELIVERY_FAILURE_REASON_INVALID_CONTENT, error.message);
    }
    const lastInbound = message.lastInboundAt?.getTime();
    if (
      isFreeForm(message) &&
      (lastInbound === undefined || now().getTime() - lastInbound > SERVICE_WINDOW_MS)
    ) {
      const detail = `outbound ${message.id}: a ${type} message more than 24 h after the shopper last wrote; only templates are allowed`;
      throw await refuse(message, "outside_window", Reason.DELIVERY_FAILURE_REASON_OUTSIDE_WINDOW, detail);
    }

    const claimed = await claim(message);
    if (claimed.state === "done") {
      count(message, "duplicate", undefined);
      span?.addEvent("duplicate");
      if (claimed.doc.status === "failed") {
        // The failure may not have reached the conversation before the crash that caused this
        // redelivery: say it again (deduplicated downstream).
        await reportFailure(
          message,
          Reason.DELIVERY_FAILURE_REASON_REJECTED,
          claimed.doc.error?.message ?? "",
          claimed.doc.error?.code ?? 0,
        );
      }
      return;
    }
    if (claimed.state === "busy")
      throw new TransientError(`outbound ${message.id} is being sent by another dispatcher`);

    let phoneOnly = claimed.doc?.bsuidRefused === true;
    try {
      const image = message.content?.$case === "image" ? message.content.value.source : undefined;
      const mediaId = image?.$case === "storedImageId" ? await mediaIdFor(message, image.value) : undefined;
      const send = async () => {
        const payload = toGraphPayload(message, {
          ...(mediaId ? { mediaId } : {}),
          phoneOnly,
          callbackData: deps.callbackData.seal(message.id),
        });
        const waitedMs = await deps.pacer.acquire(message.phoneNumberId);
        paced.observe(waitedMs / 1000);
        const stopTimer = latency.startTimer();
        return deps.graph.sendMessage(message.phoneNumberId, payload).finally(stopTimer);
      };
      const result = await send().catch(async (error: unknown) => {
        if (!(isBsuidRefusal(error) && addressing(message, phoneOnly) === "bsuid" && message.to !== ""))
          throw error;
        // Meta took nothing, and the phone number reaches the same shopper: send again, to it. The
        // claim remembers the refusal, so a retry of this message does not try the BSUID again.
        count(message, "bsuid_refused", BSUID_RECIPIENT_UNSUPPORTED);
        span?.addEvent("bsuid_refused");
        await store.rememberBsuidRefused(message.id, now());
        phoneOnly = true;
        return send();
      });
      // Meta has the message now. Failing to record that would make a retry send it again once
      // the lease expires, so the write is retried here, in place, before giving up.
      // A duplicate is a record an earlier try wrote before its answer was lost: the same message.
      await retryWrite(
        () =>
          store.recordSent({
            _id: message.id,
            wamid: result.messageId,
            conversationId: message.conversationId,
            at: now(),
          }),
        RECORD_RETRY,
      );
      count(message, "sent", undefined, addressing(message, phoneOnly));
    } catch (error) {
      const address = addressing(message, phoneOnly);
      if (error instanceof InvalidOutboundMessage) {
        await store.markFailed(message.id, { status: 0, message: error.message }, now());
        throw await refuse(
          message,
          "invalid",
          Reason.DELIVERY_FAILURE_REASON_INVALID_CONTENT,
          error.message,
          undefined,
          address,
        );
      }
      if (!(error instanceof GraphApiError)) throw error;
      if (error.transient) {
        // Give the claim back at once: the retry (this consumer, in order) must not wait out a lease.
        await store.releaseLease(message.id, now());
        count(message, "retry", error.code, address);
        throw new TransientError(error.message);
      }
      // A BSUID Meta will not send to, and no phone number: nothing else reaches this shopper.
      const detail =
        address === "bsuid" && isBsuidRefusal(error)
          ? `outbound ${message.id}: a business-scoped user id (BSUID) recipient is not supported here, and no phone number is known: ${error.message}`
          : error.message;
      await store.markFailed(
        message.id,
        {
          status: error.status,
          ...(error.code !== undefined ? { code: error.code } : {}),
          message: detail,
        },
        now(),
      );
      throw await refuse(
        message,
        "rejected",
        Reason.DELIVERY_FAILURE_REASON_REJECTED,
        detail,
        error.code,
        address,
      );
    }
  }

  return async (incoming) => {
    const message = decodeRecord(Records.outboundMessage, incoming);
    try {
      await dispatch(message);
    } catch (error) {
      throw asTransient(error, "send store");
    }
  };
}

/** The sent record's retries (see dispatch): 8 attempts, 6 to 11 s of waits in all. */
const RECORD_RETRY = { attempts: 8, initialMs: 100, maxMs: 5000 };

const isBsuidRefusal = (error: unknown) =>
  error instanceof GraphApiError && error.code === BSUID_RECIPIENT_UNSUPPORTED;

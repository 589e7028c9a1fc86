import {
  Header,
  PermanentError,
  type Publisher,
  sendInWritersTraces,
  type TopicNames,
  TransientError,
} from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { isTransientMongoError } from "@taituri/mongo";
import { payment } from "@taituri/proto";
import { injectContext, redact, SpanKind, trace, traceContextOf, withSpan } from "@taituri/telemetry";
import type { PaymentProvider } from "./adapters/provider.ts";
import { ProviderRefusal } from "./adapters/provider.ts";
import { type OrderDoc, type OutboxEntry, outboxValue, type PaymentStore } from "./adapters/store.ts";
import { checkPrice, type PriceCatalog } from "./domain/catalog.ts";
import { type Change, decideEvent, planRequest, sessionKey } from "./domain/order.ts";
import { type CheckoutEventLike, mapCheckoutEvent } from "./domain/provider-event.ts";
import type { Metrics } from "./metrics.ts";

export const PAYMENT_EVENT_TYPE = "application/x-protobuf; messageType=payment.v1.PaymentEvent";

export interface PaymentsDeps {
  store: PaymentStore;
  provider: PaymentProvider;
  publisher: Publisher;
  topics: TopicNames;
  catalog: PriceCatalog;
  sessionTtlMs: number;
  metrics: Metrics;
  logger: Logger;
  now?: () => Date;
}

export type WebhookOutcome =
  | "applied"
  | "duplicate"
  | "stale"
  | "ignored"
  | "unknown_order"
  | "double_charge";

/** Version conflicts in a row before giving up to the caller's retry: only a storm of writers gets here. */
const MAX_CONFLICTS = 5;

type Outcome = NonNullable<payment.PaymentEvent["outcome"]>;

/**
 * Everything that moves an order: payment requests from the conversation, provider events from
 * the webhooks, refunds. Each change is one claimed write of the order document (store.ts) that also
 * writes the events it causes (the outbox); they are published after the write and forgotten
 * once Kafka has them. A crash in between leaves them in the document, and the sweeper publishes
 * them (relayStale): nothing is lost, and a copy published twice is deduplicated downstream.
 */
export function createPayments(deps: PaymentsDeps) {
  const now = deps.now ?? (() => new Date());
  const { store, provider, metrics, logger } = deps;

  const encode = (order: Pick<OrderDoc, "_id" | "conversationId">, outcome: Outcome) =>
    Buffer.from(
      payment.PaymentEvent.encode({
        orderId: order._id,
        conversationId: order.conversationId,
        outcome,
      }).finish(),
    );

  /**
   * An outbox entry carries the trace of the request or webhook that wrote it (W3C traceparent and
   * tracestate), so that whoever publishes it (the writer, or the sweeper after a crash) publishes
   * it as a child of that trace (see relay).
   */
  const entry = (order: OrderDoc, name: string, outcome: Outcome): OutboxEntry => ({
    id: `${order._id}:${name}:${order.attempt}`,
    topic: deps.topics.paymentEvents,
    key: order.conversationId,
    value: encode(order, outcome),
    headers: { [Header.type]: PAYMENT_EVENT_TYPE, ...traceContextOf(injectContext()) },
  });

  /** An event that restates what the order already says (no state change, so no outbox). */
  async function publishNow(
    order: Pick<OrderDoc, "_id" | "conversationId">,
    outcome: Outcome,
  ): Promise<void> {
    await deps.publisher.send(deps.topics.paymentEvents, [
      {
        key: order.conversationId,
        value: encode(order, outcome),
        headers: { [Header.type]: PAYMENT_EVENT_TYPE },
      },
    ]);
  }

  /**
   * Publishes outbox entries and forgets them. A writer relays only the entries it wrote (`only`):
   * older ones belong to a writer that may be publishing them right now, or to the sweeper.
   */
  async function relay(order: OrderDoc, only?: OutboxEntry[]): Promise<void> {
    const ids = only?.map((e) => e.id);
    const entries = ids ? order.outbox.filter((e) => ids.includes(e.id)) : order.outbox;
    if (entries.length === 0) return;
    // From the trace that wrote them: an entry the sweeper relays continues the webhook's or
    // request's trace instead of starting one of its own.
    await sendInWritersTraces(
      deps.publisher,
      entries.map((e) => ({
        topic: e.topic,
        key: e.key,
        id: e.id,
        value: outboxValue(e),
        headers: e.headers,
      })),
    );
    await store.clearOutbox(
      order._id,
      entries.map((e) => e.id),
    );
  }

  async function timed<T>(operation: string, call: () => Promise<T>): Promise<T> {
    const stop = metrics.providerLatency.startTimer({ provider: provider.name, operation });
    return withSpan(
      "@taituri/payment",
      `${provider.name} ${operation}`,
      { kind: SpanKind.CLIENT, attributes: { "payment.provider": provider.name } },
      async () => {
        try {
          const result = await call();
          stop({ result: "ok" });
          return result;
        } catch (error) {
          const kind = error instanceof ProviderRefusal ? "refused" : "transient";
          stop({ result: kind });
          metrics.providerErrors.inc({ provider: provider.name, operation, kind });
          throw error;
        }
      },
    );
  }

  function counted(from: string, updated: OrderDoc): void {
    metrics.transitions.inc({ from, to: updated.state });
    trace
      .getActiveSpan()
      ?.addEvent("order.transition", { from, to: updated.state, order: redact(updated._id) });
  }

  async function openSession(order: OrderDoc): Promise<OrderDoc | undefined> {
    const at = now();
    const attempt = order.attempt + 1;
    const expiresAt = new Date(at.getTime() + deps.sessionTtlMs);
    let session: { id: string; url: string };
    try {
      session = await timed("create_session", () =>
        provider.createSession({
          orderId: order._id,
          conversationId: order.conversationId,
          attempt,
          idempotencyKey: sessionKey(order._id, attempt),
          amount: order.amount,
          currency: order.currency,
          productName: order.productName,
          expiresAt,
        }),
      );
    } catch (error) {
      if (!(error instanceof ProviderRefusal))
        throw new TransientError(`provider: ${(error as Error).message}`);
      // Nothing was opened, so nothing can be charged; the order stays as it was and a new "buy"
      // tries again. The reason names the attempt: the conversation deduplicates on it.
      metrics.requests.inc({ outcome: "refused" });
      await publishNow(order, {
        $case: "failed",
        value: { reason: `checkout could not be opened (checkout ${attempt}): ${error.message}` },
      });
      throw new PermanentError(`order ${order._id}: ${error.message}`);
    }
    await store.recordSession(order._id, { ...session, expiresAt, attempt }, provider.name, at);
    const link = entry({ ...order, attempt }, "link", { $case: "linkCreated", value: { url: session.url } });
    const updated = await store.transition(
      order,
      "open_session",
      {
        session: { id: session.id, url: session.url, expiresAt, attempt },
        attempt,
        openUntil: expiresAt,
        linkSentAt: order.linkSentAt ?? at,
      },
      [link],
      "request",
      at,
    );
    if (!updated) return undefined;
    counted(order.state, updated);
    metrics.linksCreated.inc({ provider: provider.name });
    await relay(updated, [link]);
    return updated;
  }

  async function handleRequest(request: payment.PaymentRequest): Promise<void> {
    for (const field of ["orderId", "conversationId", "shopId", "productId", "currency"] as const) {
      if (!request[field]) throw new PermanentError(`payment request without ${field}`);
    }
    const price = checkPrice(deps.catalog, {
      shopId: request.shopId,
      productId: request.productId,
      amount: request.amount,
      currency: request.currency,
    });
    if (!price.ok) {
      // Never charge what the catalog does not say: the shopper is told, the request is kept in
      // the dead-letter topic for a person to look at, and no order or session exists.
      metrics.requests.inc({ outcome: "rejected" });
      await publishNow(
        { _id: request.orderId, conversationId: request.conversationId },
        { $case: "failed", value: { reason: `rejected: ${price.reason}` } },
      );
      throw new PermanentError(`payment request ${request.orderId} rejected: ${price.reason}`);
    }
    let order =
      (await store.get(request.orderId)) ??
      (await store.create(
        {
          _id: request.orderId,
          conversationId: request.conversationId,
          shopId: request.shopId,
          productId: request.productId,
          productName: price.productName,
          designId: request.designId,
          imageId: request.imageId,
          amount: price.shop.product.price,
          currency: price.shop.currency,
          provider: provider.name,
        },
        now(),
      ));
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const plan = planRequest(order.state);
      switch (plan.type) {
        case "open_session": {
          const updated = await openSession(order);
          if (!updated) break;
          metrics.requests.inc({ outcome: "session_opened" });
          return;
        }
        case "resend_link":
          // The same order asked again (a redelivery, a second tap): the same link, no new session.
          metrics.requests.inc({ outcome: "link_resent" });
          await publishNow(order, { $case: "linkCreated", value: { url: order.session?.url ?? "" } });
          return;
        case "resend_succeeded":
          metrics.requests.inc({ outcome: "succeeded_resent" });
          await publishNow(order, { $case: "succeeded", value: {} });
          return;
        case "refuse":
          metrics.requests.inc({ outcome: "refused" });
          await publishNow(order, { $case: "failed", value: { reason: plan.reason } });
          return;
      }
      const reloaded = await store.get(request.orderId);
      if (!reloaded) throw new TransientError(`order ${request.orderId} vanished`);
      order = reloaded;
    }
    throw new TransientError(
      `order ${request.orderId} changed ${MAX_CONFLICTS} times while handling a request`,
    );
  }

  function effectOf(
    order: OrderDoc,
    change: Change,
    event: { sessionId: string; reason?: string; paymentRef?: string },
  ) {
    const at = now();
    switch (change) {
      case "pay":
        return {
          patch: {
            paidSessionId: event.sessionId,
            paidAt: at,
            openUntil: null,
            ...(event.paymentRef ? { paymentRef: event.paymentRef } : {}),
          },
          outbox: [entry(order, "succeeded", { $case: "succeeded", value: {} })],
        };
      case "expire":
        return {
          patch: { openUntil: null },
          outbox: [entry(order, "expired", { $case: "expired", value: {} })],
        };
      case "fail": {
        // The attempt in the reason keeps two failures of one order apart for the conversation.
        const reason = `${event.reason ?? "payment failed"} (checkout ${order.attempt})`;
        return {
          patch: { openUntil: null, failureReason: reason },
          outbox: [entry(order, "failed", { $case: "failed", value: { reason } })],
        };
      }
      case "open_session":
      case "refund":
        return { patch: {}, outbox: [] };
    }
  }

  /**
   * A verified provider event. Idempotency key: the provider's event id (unique `_id` of
   * payment_provider_events); the order's version claim is the second guard, so the same
   * event delivered many times, even at once, changes the order once and emits one event.
   */
  async function applyProviderEvent(raw: CheckoutEventLike): Promise<WebhookOutcome> {
    const mapped = mapCheckoutEvent(raw);
    if (mapped.type === "ignored") return "ignored";
    const event = mapped.event;
    const at = now();
    const claim = await store.claimEvent(
      {
        _id: event.id,
        provider: provider.name,
        type: raw.type,
        sessionId: event.sessionId,
        ...(event.orderId ? { orderId: event.orderId } : {}),
      },
      at,
    );
    if (claim === "processed") return "duplicate";
    const orderId = (await store.sessionOrder(event.sessionId)) ?? event.orderId;
    let order = orderId ? await store.get(orderId) : null;
    if (!order) {
      // Another checkout of the same Stripe account, or an order from another deployment.
      await store.markEventProcessed(event.id, "unknown_order", at);
      return "unknown_order";
    }
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const decision = decideEvent(
        {
          state: order.state,
          ...(order.session ? { sessionId: order.session.id } : {}),
          ...(order.paidSessionId ? { paidSessionId: order.paidSessionId } : {}),
        },
        event,
      );
      if (decision.type === "apply") {
        const { patch, outbox } = effectOf(order, decision.change, event);
        const updated = await store.transition(
          order,
          decision.change,
          patch,
          outbox,
          `event:${event.id}`,
          at,
        );
        if (updated) {
          counted(order.state, updated);
          if (updated.state === "paid") {
            metrics.paid.inc({ provider: provider.name });
            if (order.linkSentAt)
              metrics.linkToPaid.observe((at.getTime() - order.linkSentAt.getTime()) / 1000);
          }
          await relay(updated, outbox);
          await store.markEventProcessed(event.id, "applied", at);
          return "applied";
        }
        const reloaded = await store.get(order._id);
        if (!reloaded) throw new Error(`order ${order._id} vanished`);
        order = reloaded;
        continue;
      }
      if (decision.type === "double_charge") {
        // Money taken on a second session of a paid order: only possible if a provider lets an
        // old session complete. A person refunds it (internal refund endpoint or the dashboard).
        logger.error(
          { orderId: order._id, sessionId: event.sessionId, paidSessionId: order.paidSessionId },
          "order paid twice: refund the second payment",
        );
      }
      // A duplicate's events are the first delivery's to publish (or the sweeper's, after a crash):
      // publishing them here too would emit them twice while that delivery is still at work.
      await store.markEventProcessed(event.id, decision.type, at);
      return decision.type;
    }
    throw new TransientError(`order ${order._id} changed ${MAX_CONFLICTS} times while applying ${event.id}`);
  }

  /** Internal refund: the provider first (idempotent), then the order; both safe to repeat. */
  async function refund(orderId: string): Promise<OrderDoc | "not_found" | "not_paid"> {
    let order = await store.get(orderId);
    if (!order) return "not_found";
    if (order.state === "refunded") return order;
    if (order.state !== "paid") return "not_paid";
    const paid = order;
    await timed("refund", () =>
      provider.refund({
        orderId: paid._id,
        amount: paid.amount,
        ...(paid.paymentRef ? { paymentRef: paid.paymentRef } : {}),
      }),
    );
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const updated = await store.transition(order, "refund", {}, [], "refund", now());
      if (updated) {
        counted(order.state, updated);
        return updated;
      }
      const reloaded: OrderDoc | null = await store.get(orderId);
      if (!reloaded) return "not_found";
      if (reloaded.state === "refunded") return reloaded;
      order = reloaded;
    }
    throw new Error(`order ${orderId} changed ${MAX_CONFLICTS} times while refunding`);
  }

  return {
    handleRequest,
    applyProviderEvent,
    refund,

    /** Publishes the outboxes a crashed writer left behind. Returns how many orders it relayed. */
    async relayStale(graceMs: number, limit = 100): Promise<number> {
      const stale = await store.unpublished(new Date(now().getTime() - graceMs), limit);
      for (const order of stale) await relay(order);
      return stale.length;
    },

    /** Orders of this provider whose open session is past its expiry. */
    dueForExpiry: (limit = 100) => store.dueForExpiry(provider.name, now(), limit),

    /** Whether the checkout page may still take a payment on this session. */
    payable: (order: OrderDoc, sessionId: string) =>
      order.state === "link_sent" &&
      order.session?.id === sessionId &&
      order.session.expiresAt.getTime() > now().getTime(),
  };
}

export type Payments = ReturnType<typeof createPayments>;

/** Store errors that mean "MongoDB is not answering": retried, never dead-lettered. */
export function asTransient(error: unknown): unknown {
  return isTransientMongoError(error)
    ? new TransientError(`order store unavailable: ${(error as Error).message}`)
    : error;
}

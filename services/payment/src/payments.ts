import {
  encodeRecord,
  PermanentError,
  type Publisher,
  Records,
  sendInWritersTraces,
  type TopicNames,
  TransientError,
} from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { MAX_VERSION_CONFLICTS } from "@taituri/mongo";
import { payment } from "@taituri/proto";
import { injectContext, redact, SpanKind, trace, traceContextOf, withSpan } from "@taituri/telemetry";
import type { PaymentProvider, ShippingAddress } from "./adapters/provider.ts";
import { ProviderRefusal } from "./adapters/provider.ts";
import {
  type OrderDoc,
  type OrderPatch,
  type OutboxEntry,
  outboxValue,
  type PaymentStore,
  type SessionInfo,
} from "./adapters/store.ts";
import { checkPrice, type PriceCatalog } from "./domain/catalog.ts";
import { deliveryMessage, type OrderDelivery, readDelivery, trackingUrlProblem } from "./domain/delivery.ts";
import { readOrderId, readOrderNumberText } from "./domain/ids.ts";
import {
  type CancelReason,
  type Change,
  canChange,
  decideEvent,
  planCancel,
  planRequest,
  type RefundReason,
  refundKey,
  sessionKey,
} from "./domain/order.ts";
import { generateOrderNumber } from "./domain/order-number.ts";
import { type CheckoutEventLike, mapCheckoutEvent, namesAnotherOrder } from "./domain/provider-event.ts";
import type { Metrics } from "./metrics.ts";

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
  /** Draws order numbers (tests give their own to make numbers collide). */
  drawNumber?: () => string;
}

/**
 * What a verified provider event did (payment_webhooks_total{outcome}). `malformed`: an id of
 * another type or shape, refused with 400 before anything is looked up. `unknown_order`: a session
 * we never created. `order_mismatch`: it names another order than its session's. Neither of the
 * last two changes anything.
 */
export type WebhookOutcome =
  | "applied"
  | "duplicate"
  | "stale"
  | "ignored"
  | "malformed"
  | "unknown_order"
  | "order_mismatch"
  | "double_charge";

/** What a CancelOrder did (payment_order_cancellations_total{outcome}). */
export type CancelOutcome = "cancelled" | "already_cancelled" | "already_paid" | "unknown_order";

/** A tracking URL that cannot go to a shopper (not http(s), or too long): the caller's mistake. */
export class InvalidTrackingUrl extends Error {
  override readonly name = "InvalidTrackingUrl";
}

type Outcome = NonNullable<payment.PaymentEvent["outcome"]>;

const CANCEL_REASONS: Partial<Record<payment.CancelReason, CancelReason>> = {
  [payment.CancelReason.CANCEL_REASON_SHOPPER]: "shopper",
  [payment.CancelReason.CANCEL_REASON_REPLACED]: "replaced",
};

const REFUND_REASONS: Record<RefundReason, payment.RefundReason> = {
  cancelled_before_payment: payment.RefundReason.REFUND_REASON_CANCELLED_BEFORE_PAYMENT,
  by_shop: payment.RefundReason.REFUND_REASON_BY_SHOP,
};

/**
 * Everything that moves an order: payment requests and cancellations from the conversation,
 * provider events from the webhooks, refunds. Each change is one claimed write of the order
 * document (store.ts) that also writes the events it causes (the outbox); they are published after
 * the write and forgotten once Kafka has them. A crash in between leaves them in the document, and
 * the sweeper publishes them (relayStale): nothing is lost, and a copy published twice is
 * deduplicated downstream.
 */
export function createPayments(deps: PaymentsDeps) {
  const now = deps.now ?? (() => new Date());
  const drawNumber = deps.drawNumber ?? (() => generateOrderNumber());
  const { store, provider, metrics, logger } = deps;

  type Addressed = Pick<OrderDoc, "_id" | "conversationId"> & { number?: string };

  const encode = (order: Addressed, outcome: Outcome) =>
    encodeRecord(Records.paymentEvent, {
      orderId: order._id,
      conversationId: order.conversationId,
      orderNumber: order.number ?? "",
      outcome,
    });

  /**
   * An outbox entry carries the trace of the request or webhook that wrote it (W3C traceparent and
   * tracestate), so that whoever publishes it (the writer, or the sweeper after a crash) publishes
   * it as a child of that trace (see relay).
   */
  const traced = (entry: OutboxEntry): OutboxEntry => ({
    ...entry,
    headers: { ...entry.headers, ...traceContextOf(injectContext()) },
  });

  /** A PaymentEvent for the conversation, keyed by conversation id. */
  const entry = (order: OrderDoc, name: string, outcome: Outcome): OutboxEntry =>
    traced({
      id: `${order._id}:${name}:${order.attempt}`,
      topic: deps.topics.paymentEvents,
      key: order.conversationId,
      ...encode(order, outcome),
    });

  /**
   * The paid order for the shop (fulfilment.v1.OrderPaid on the orders topic). Keyed, and named,
   * by the order number: the record leaves for the shop, which has no business with the order id
   * or the conversation id (the shopper's phone number).
   */
  const orderPaid = (order: OrderDoc, paidAt: Date): OutboxEntry => {
    const eventId = `order.paid:${order.number}`;
    return traced({
      id: eventId,
      topic: deps.topics.orders,
      key: order.number,
      ...encodeRecord(Records.orderPaid, {
        eventId,
        orderNumber: order.number,
        shopId: order.shopId,
        productId: order.productId,
        productName: order.productName,
        amount: order.amount,
        currency: order.currency,
        imageId: order.imageId,
        recipient: order.recipient ?? "",
        delivery: order.delivery ? deliveryMessage(order.delivery) : undefined,
        paidAt,
      }),
    });
  };

  /** An event that restates what the order already says (no state change, so no outbox). */
  async function publishNow(order: Addressed, outcome: Outcome): Promise<void> {
    await deps.publisher.send(deps.topics.paymentEvents, [
      { key: order.conversationId, ...encode(order, outcome) },
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

  /** The order as it is now; throws when it vanished (erased, or forgotten past its retention, meanwhile). */
  async function reload(orderId: string): Promise<OrderDoc> {
    const reloaded = await store.get(orderId);
    if (!reloaded) throw new TransientError(`order ${orderId} vanished`);
    return reloaded;
  }

  /**
   * Closes a session at the provider so its link cannot be paid. A provider error is transient
   * (retried with the message that asked); a refusal is logged and not retried: the order is
   * cancelled whatever the provider says, and a payment that lands all the same is handled by the
   * webhook like any other.
   */
  async function closeSession(order: OrderDoc, sessionId: string): Promise<void> {
    try {
      const closed = await timed("expire_session", () => provider.expireSession(sessionId));
      trace.getActiveSpan()?.setAttribute("payment.session.closed", closed);
    } catch (error) {
      if (error instanceof ProviderRefusal) {
        logger.error(
          { orderNumber: order.number, sessionId, err: error },
          "the provider refused to expire a cancelled order's session; a payment on it is still refunded or kept",
        );
        return;
      }
      throw new TransientError(`provider: ${(error as Error).message}`);
    }
  }

  async function openSession(order: OrderDoc): Promise<OrderDoc | undefined> {
    const at = now();
    const attempt = order.attempt + 1;
    // This attempt's session, if a try that crashed (or a consumer that lost a rebalance) recorded
    // one and did not get to the order: the same session, not a second one. Stripe's idempotency
    // key would give the same back anyway; the local provider's ids are random.
    const recorded = await store.sessionFor(order._id, attempt);
    if (recorded && recorded.expiresAt.getTime() > at.getTime()) return linkSession(order, recorded, at);
    const expiresAt = new Date(at.getTime() + deps.sessionTtlMs);
    let session: { id: string; url: string };
    try {
      session = await timed("create_session", () =>
        provider.createSession({
          orderNumber: order.number,
          attempt,
          idempotencyKey: sessionKey(order.number, attempt),
          amount: order.amount,
          currency: order.currency,
          productName: order.productName,
          expiresAt,
          ...(order.delivery?.method === "address" ? { shipping: shippingOf(order.delivery) } : {}),
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
    return linkSession(order, { ...session, expiresAt, attempt }, at);
  }

  /** created/expired/failed → link_sent with the attempt's session, its link for the conversation. */
  async function linkSession(order: OrderDoc, session: SessionInfo, at: Date): Promise<OrderDoc | undefined> {
    const { attempt, expiresAt } = session;
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
    if (!updated) {
      // Cancelled while the session was being opened (only when two consumers overlap in a
      // rebalance): the session exists at the provider but not in the order, so close it here.
      const current = await store.get(order._id);
      if (current?.state === "cancelled" && current.session?.id !== session.id)
        await closeSession(current, session.id);
      return undefined;
    }
    counted(order.state, updated);
    metrics.linksCreated.inc({ provider: provider.name });
    await relay(updated, [link]);
    return updated;
  }

  /**
   * Never charge what the catalog does not say, nor for a gift the shop cannot send: the shopper is
   * told, the request is kept in the dead-letter topic for a person to look at, and no order or
   * session exists (so the event carries no order number). The reason never holds what the shopper
   * typed (it is logged with the dead letter).
   */
  async function reject(request: payment.PaymentRequest, reason: string): Promise<never> {
    metrics.requests.inc({ outcome: "rejected" });
    await publishNow(
      { _id: request.orderId, conversationId: request.conversationId },
      { $case: "failed", value: { reason: `rejected: ${reason}` } },
    );
    throw new PermanentError(`payment request ${request.orderId} rejected: ${reason}`);
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
    if (!price.ok) return reject(request, price.reason);
    const delivery = readDelivery(price.shop, request);
    if (!delivery.ok) return reject(request, delivery.reason);
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
          delivery: delivery.delivery,
          recipient: delivery.recipient,
          provider: provider.name,
        },
        now(),
        drawNumber,
      ));
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
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
      order = await reload(request.orderId);
    }
    throw new TransientError(
      `order ${request.orderId} changed ${MAX_VERSION_CONFLICTS} times while handling a request`,
    );
  }

  /**
   * A CancelOrder. Idempotency key: the order id, through the order's state: the first delivery's
   * claimed write (`cancel`, unique change id in payment_order_changes) moves it to cancelled;
   * a redelivery, or a concurrent delivery that lost the claim, finds it cancelled and only closes
   * the session again (the provider's expiry is idempotent by nature). A paid order stays paid.
   */
  async function cancel(request: payment.CancelOrder): Promise<CancelOutcome> {
    if (!request.orderId) throw new PermanentError("cancel order without orderId");
    const reason = CANCEL_REASONS[request.reason];
    if (!reason) throw new PermanentError(`cancel order ${request.orderId} without a known reason`);
    const outcome = await cancelFor(request.orderId, reason);
    metrics.cancellations.inc({ reason, outcome });
    return outcome;
  }

  async function cancelFor(orderId: string, reason: CancelReason): Promise<CancelOutcome> {
    let order = await store.get(orderId);
    // No order: its request was rejected (price), so there is nothing to close or pay.
    if (!order) return "unknown_order";
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
      const plan = planCancel(order.state);
      switch (plan.type) {
        case "too_late":
          // The payment landed first: the conversation hears "succeeded" from the outbox as usual.
          return "already_paid";
        case "close_again":
          if (order.cancelledSessionId) await closeSession(order, order.cancelledSessionId);
          return "already_cancelled";
        case "cancel": {
          const at = now();
          // Only a link_sent order has a session that may still be paid; the others ended.
          const open = order.state === "link_sent" ? order.session?.id : undefined;
          const updated = await store.transition(
            order,
            "cancel",
            {
              cancelReason: reason,
              cancelledAt: at,
              openUntil: null,
              ...(open ? { cancelledSessionId: open } : {}),
            },
            [],
            `cancel:${reason}`,
            at,
          );
          if (updated) {
            counted(order.state, updated);
            if (open) await closeSession(updated, open);
            return "cancelled";
          }
          break;
        }
      }
      order = await reload(orderId);
    }
    throw new TransientError(`order ${orderId} changed ${MAX_VERSION_CONFLICTS} times while cancelling`);
  }

  function effectOf(
    order: OrderDoc,
    change: Change,
    event: { sessionId: string; reason?: string; paymentRef?: string },
    at: Date,
  ): { patch: OrderPatch; outbox: OutboxEntry[] } {
    const payment = {
      paidSessionId: event.sessionId,
      paidAt: at,
      openUntil: null,
      ...(event.paymentRef ? { paymentRef: event.paymentRef } : {}),
    };
    switch (change) {
      case "pay":
        // The shopper hears "succeeded"; the shop gets the order to send, in the same write.
        return {
          patch: payment,
          outbox: [entry(order, "succeeded", { $case: "succeeded", value: {} }), orderPaid(order, at)],
        };
      case "pay_cancelled":
        // The payment is recorded and the refund claimed in one write; its event follows the
        // provider's refund (finishRefund), so the shopper is told once the money is on its way back.
        return {
          patch: { ...payment, refundReason: "cancelled_before_payment", refundDueAt: at },
          outbox: [],
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
      case "cancel":
      case "ship":
      case "refund":
      case "complete_refund":
        return { patch: {}, outbox: [] };
    }
  }

  /**
   * The order an event is about: the one we created its session for (payment_sessions), never one
   * found by what the event says of itself (its metadata can be written by whoever signs events:
   * with the local provider, anyone who knows its development secret).
   */
  async function orderOf(event: { sessionId: string }): Promise<OrderDoc | null> {
    const orderId = await store.sessionOrder(event.sessionId);
    return orderId ? store.get(orderId) : null;
  }

  /**
   * A verified provider event. Idempotency key: the provider's event id (unique `_id` of
   * payment_provider_events); the order's version claim is the second guard, so the same
   * event delivered many times, even at once, changes the order once and emits one event.
   */
  async function applyProviderEvent(raw: CheckoutEventLike): Promise<WebhookOutcome> {
    const mapped = mapCheckoutEvent(raw);
    if (mapped.type === "ignored") return "ignored";
    if (mapped.type === "malformed") {
      // Signed with our secret, yet not a provider's: the ids themselves are not logged.
      logger.warn({ type: String(raw?.type), problem: mapped.why }, "malformed provider event refused");
      return "malformed";
    }
    const event = mapped.event;
    const at = now();
    const claim = await store.claimEvent(
      {
        _id: event.id,
        provider: provider.name,
        type: raw.type,
        sessionId: event.sessionId,
        ...(event.orderNumber ? { orderNumber: event.orderNumber } : {}),
      },
      at,
    );
    if (claim === "processed") return "duplicate";
    let order = await orderOf(event);
    if (!order) {
      // A session we never created: another checkout of the same Stripe account, another
      // deployment's, or a forgery. Acknowledged (the provider stops retrying), changes nothing.
      await store.markEventProcessed(event.id, "unknown_order", at);
      return "unknown_order";
    }
    if (namesAnotherOrder(event, order.number)) {
      // Our session, someone else's order number: never from a provider (we wrote both). Order
      // numbers and session ids are not personal data; the order id (a phone number) stays out.
      logger.error(
        {
          eventId: event.id,
          sessionId: event.sessionId,
          orderNumber: order.number,
          namedOrderNumber: event.orderNumber,
        },
        "provider event names another order than its session's: refused",
      );
      await store.markEventProcessed(event.id, "order_mismatch", at);
      return "order_mismatch";
    }
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
      const decision = decideEvent(
        {
          state: order.state,
          ...(order.session ? { sessionId: order.session.id } : {}),
          ...(order.paidSessionId ? { paidSessionId: order.paidSessionId } : {}),
          ...(order.cancelReason ? { cancelReason: order.cancelReason } : {}),
        },
        event,
      );
      if (decision.type === "apply") {
        const { patch, outbox } = effectOf(order, decision.change, event, at);
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
          if (updated.paidAt && !order.paidAt) {
            metrics.paid.inc({ provider: provider.name });
            if (order.linkSentAt)
              metrics.linkToPaid.observe((at.getTime() - order.linkSentAt.getTime()) / 1000);
          }
          await relay(updated, outbox);
          await store.markEventProcessed(event.id, "applied", at, order._id);
          if (updated.state === "refund_due") await tryRefund(updated);
          return "applied";
        }
        order = await reload(order._id);
        continue;
      }
      if (decision.type === "double_charge") {
        // Money taken on a second session of a paid order: only possible if a provider lets an
        // old session complete. A person refunds it (internal refund endpoint or the dashboard).
        logger.error(
          { orderNumber: order.number, sessionId: event.sessionId, paidSessionId: order.paidSessionId },
          "order paid twice: refund the second payment",
        );
      }
      // A duplicate's events are the first delivery's to publish (or the sweeper's, after a crash):
      // publishing them here too would emit them twice while that delivery is still at work.
      await store.markEventProcessed(event.id, decision.type, at, order._id);
      return decision.type;
    }
    throw new TransientError(
      `order ${order._id} changed ${MAX_VERSION_CONFLICTS} times while applying ${event.id}`,
    );
  }

  /**
   * Gives a refund_due order's money back: the provider's refund under the order's refund key
   * (so asking twice refunds once), then refund_due → refunded with its `refunded` event. A
   * crash or provider outage in between leaves the order refund_due for the sweeper
   * (refundDueRetries); a refusal is recorded for a person and no longer retried.
   */
  async function finishRefund(due: OrderDoc): Promise<OrderDoc> {
    try {
      await timed("refund", () =>
        provider.refund({
          orderNumber: due.number,
          amount: due.amount,
          idempotencyKey: refundKey(due.number),
          ...(due.paymentRef ? { paymentRef: due.paymentRef } : {}),
        }),
      );
    } catch (error) {
      if (error instanceof ProviderRefusal) {
        logger.error(
          { orderNumber: due.number, err: error },
          "the provider refused a refund: a person must refund this order",
        );
        await store.note(due, { refundRefused: error.message, refundDueAt: null }, now());
      }
      throw error;
    }
    const reason = due.refundReason ?? "by_shop";
    let order = due;
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
      if (order.state === "refunded") return order;
      if (order.state !== "refund_due")
        throw new Error(`order ${order.number} is ${order.state}, not refund_due, after its refund`);
      const at = now();
      const refunded = entry(order, "refunded", {
        $case: "refunded",
        value: { reason: REFUND_REASONS[reason], amount: order.amount, currency: order.currency },
      });
      const updated = await store.transition(
        order,
        "complete_refund",
        { refundedAt: at, refundDueAt: null },
        [refunded],
        "refund",
        at,
      );
      if (updated) {
        counted(order.state, updated);
        metrics.refunds.inc({ reason });
        await relay(updated, [refunded]);
        return updated;
      }
      order = await reload(order._id);
    }
    throw new TransientError(`order ${due._id} changed ${MAX_VERSION_CONFLICTS} times while refunding`);
  }

  /** finishRefund where a failure must not undo what was done: the sweeper takes over. */
  async function tryRefund(due: OrderDoc): Promise<void> {
    try {
      await finishRefund(due);
    } catch (error) {
      logger.warn({ orderNumber: due.number, err: error }, "refund not finished; the sweeper retries it");
    }
  }

  /**
   * An order by its id or its number (in any form parseOrderNumber reads). Text of neither shape
   * (domain/ids.ts) is looked up nowhere: null.
   */
  async function findOrder(idOrNumber: string): Promise<OrderDoc | null> {
    const number = readOrderNumberText(idOrNumber);
    const orderId = readOrderId(idOrNumber);
    return (number ? await store.byNumber(number) : null) ?? (orderId ? await store.get(orderId) : null);
  }

  /**
   * The shop sent the gift (the orders CLI, or the shop's signed call): paid → shipped in one
   * claimed write with `shipped{tracking_url}` for the conversation (keyed by conversation id, so
   * the shopper is told), relayed after. Repeating it is fine: a shipped order comes back as it is,
   * without a second event or a new tracking URL. A tracking URL that cannot go to a shopper throws
   * InvalidTrackingUrl before anything is read.
   */
  async function markShipped(
    idOrNumber: string,
    trackingUrl?: string,
  ): Promise<OrderDoc | "not_found" | "not_shippable"> {
    const url = trackingUrl?.trim() || undefined;
    const problem = url === undefined ? undefined : trackingUrlProblem(url);
    if (problem) throw new InvalidTrackingUrl(problem);
    let order = await findOrder(idOrNumber);
    if (!order) return "not_found";
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
      if (order.state === "shipped") return order;
      if (!canChange(order.state, "ship")) return "not_shippable";
      const at = now();
      const shipped = entry(order, "shipped", { $case: "shipped", value: { trackingUrl: url ?? "" } });
      const updated = await store.transition(
        order,
        "ship",
        { shippedAt: at, ...(url ? { trackingUrl: url } : {}) },
        [shipped],
        "ship",
        at,
      );
      if (updated) {
        counted(order.state, updated);
        metrics.shipped.inc();
        await relay(updated, [shipped]);
        return updated;
      }
      order = await reload(order._id);
    }
    throw new TransientError(`order ${order._id} changed ${MAX_VERSION_CONFLICTS} times while shipping`);
  }

  /**
   * Internal refund, by the shop: paid (or shipped) → refund_due (claimed), then finishRefund. Repeating it is
   * fine at every step; it also finishes a refund that is due for any other reason.
   */
  async function refund(idOrNumber: string): Promise<OrderDoc | "not_found" | "not_paid"> {
    let order = await findOrder(idOrNumber);
    if (!order) return "not_found";
    for (let conflicts = 0; conflicts < MAX_VERSION_CONFLICTS; conflicts++) {
      if (order.state === "refunded") return order;
      if (order.state === "refund_due") return finishRefund(order);
      if (!canChange(order.state, "refund")) return "not_paid";
      const at = now();
      const updated = await store.transition(
        order,
        "refund",
        { refundReason: "by_shop", refundDueAt: at },
        [],
        "refund",
        at,
      );
      if (updated) {
        counted(order.state, updated);
        return finishRefund(updated);
      }
      order = await reload(order._id);
    }
    throw new TransientError(`order ${order._id} changed ${MAX_VERSION_CONFLICTS} times while refunding`);
  }

  return {
    handleRequest,
    cancel,
    applyProviderEvent,
    refund,
    markShipped,
    findOrder,

    /** Publishes the outboxes a crashed writer left behind. Returns how many orders it relayed. */
    async relayStale(graceMs: number, limit = 100): Promise<number> {
      const stale = await store.unpublished(new Date(now().getTime() - graceMs), limit);
      for (const order of stale) await relay(order);
      return stale.length;
    },

    /**
     * Finishes the refunds a crashed writer (or a provider outage) left due for longer than
     * `graceMs`. Returns how many it tried.
     */
    async refundDueRetries(graceMs: number, limit = 100): Promise<number> {
      const due = await store.dueForRefund(new Date(now().getTime() - graceMs), limit);
      for (const order of due) await tryRefund(order);
      return due.length;
    },

    /** Orders of this provider whose open session is past its expiry. */
    dueForExpiry: (limit = 100) => store.dueForExpiry(provider.name, now(), limit),

    /** Whether the checkout page may still take a payment on this session (never for a cancelled order). */
    payable: (order: OrderDoc, sessionId: string) =>
      order.state === "link_sent" &&
      order.session?.id === sessionId &&
      order.session.expiresAt.getTime() > now().getTime(),
  };
}

export type Payments = ReturnType<typeof createPayments>;

/** A posted order's address as a provider takes it. */
function shippingOf(delivery: Extract<OrderDelivery, { method: "address" }>): ShippingAddress {
  return {
    name: delivery.name,
    line1: delivery.line1,
    ...(delivery.line2 ? { line2: delivery.line2 } : {}),
    city: delivery.city,
    postcode: delivery.postcode,
    country: delivery.country,
  };
}

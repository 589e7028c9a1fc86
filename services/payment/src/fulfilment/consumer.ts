import { decodeRecord, type IncomingMessage, PermanentError, Records, type TopicNames } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { asTransient } from "@taituri/mongo";
import { orderPaidProblem } from "./body.ts";
import type { Endpoints } from "./endpoints.ts";
import type { FulfilmentMetrics } from "./metrics.ts";
import type { DeliveryLedger } from "./store.ts";

/**
 * The orders consumer (group `payment.fulfilment`): each OrderPaid becomes one delivery, posted to
 * the shop by the worker, or kept for the orders CLI when the shop has no endpoint.
 *
 * Idempotency key: the event id ("order.paid:<number>"), enforced by the unique `_id` of
 * fulfilment_deliveries: a redelivered record (or one the payment service's sweeper published a
 * second time) is refused by the index and changes nothing. A record that cannot be read, or lacks
 * what a shop needs, is dead-lettered; a store outage retries the record.
 */
export function createOrderPaidHandler(deps: {
  ledger: DeliveryLedger;
  endpoints: Endpoints;
  topics: TopicNames;
  metrics: FulfilmentMetrics;
  logger: Logger;
  /** Tells the worker a delivery is waiting, so the first attempt does not wait for a poll. */
  wake: () => void;
  now?: () => Date;
}) {
  const now = deps.now ?? (() => new Date());
  return async (incoming: IncomingMessage): Promise<void> => {
    if (incoming.topic !== deps.topics.orders) return;
    const order = decodeRecord(Records.orderPaid, incoming);
    const problem = orderPaidProblem(order);
    if (problem) throw new PermanentError(problem);
    const endpoint = deps.endpoints.forShop(order.shopId);
    const at = now();
    let stored: "stored" | "duplicate";
    try {
      stored = await deps.ledger.record({
        _id: order.eventId,
        orderNumber: order.orderNumber,
        shopId: order.shopId,
        record: incoming.value,
        state: endpoint ? "pending" : "no_endpoint",
        attempts: 0,
        nextAttemptAt: endpoint ? at : null,
        createdAt: at,
      });
    } catch (error) {
      throw asTransient(error, "fulfilment store");
    }
    deps.metrics.received.inc({ outcome: stored });
    if (stored === "duplicate") return;
    if (endpoint) {
      deps.wake();
      return;
    }
    deps.metrics.withoutEndpoint.inc({ shop: order.shopId });
    deps.logger.warn(
      { orderNumber: order.orderNumber, shopId: order.shopId },
      "paid order of a shop without an orders endpoint; left to `npm run orders`",
    );
  };
}

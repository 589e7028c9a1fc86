import {
  decodeRecord,
  type IncomingMessage,
  kindOf,
  Records,
  TOPIC_RECORDS,
  type TopicNames,
} from "@taituri/kafka";
import { asTransient } from "@taituri/mongo";
import type { Payments } from "../payments.ts";

/**
 * The payment-requests consumer: PaymentRequest and CancelOrder records, told apart by their
 * content type (a record without one is a PaymentRequest, as older producers wrote them; an
 * unknown type is dead-lettered). Both are keyed by conversation, so a cancel arrives after the
 * request it cancels.
 *
 * Idempotency key of both: the order id, enforced by the unique `_id` of payment_orders (a
 * redelivered or repeated request finds its order and gets the same link, or "succeeded" if paid,
 * instead of a second session) and by the order's claimed writes (a redelivered cancel finds the
 * order cancelled and only closes its session again). A request whose price differs from the
 * catalog is dead-lettered after the shopper is told.
 */
export function createRequestHandler(deps: { payments: Payments; topics: TopicNames }) {
  return async (incoming: IncomingMessage): Promise<void> => {
    if (incoming.topic !== deps.topics.paymentRequests) return;
    if (kindOf(TOPIC_RECORDS.paymentRequests, incoming) === Records.cancelOrder) {
      const cancel = decodeRecord(Records.cancelOrder, incoming);
      await transient(() => deps.payments.cancel(cancel));
      return;
    }
    const request = decodeRecord(Records.paymentRequest, incoming);
    await transient(() => deps.payments.handleRequest(request));
  };
}

async function transient(work: () => Promise<unknown>): Promise<void> {
  try {
    await work();
  } catch (error) {
    throw asTransient(error, "order store");
  }
}

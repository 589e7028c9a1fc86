import { type IncomingMessage, PermanentError, type TopicNames } from "@taituri/kafka";
import { payment } from "@taituri/proto";
import { asTransient, type Payments } from "../payments.ts";

/**
 * The payment-requests consumer. Idempotency key: the order id (conversation + round + design),
 * enforced by the unique `_id` of payment_orders: a redelivered or repeated request finds its
 * order and gets the same link (or "succeeded" if paid) instead of a second session. A request
 * whose price differs from the catalog is dead-lettered after the shopper is told.
 */
export function createRequestHandler(deps: { payments: Payments; topics: TopicNames }) {
  return async (incoming: IncomingMessage): Promise<void> => {
    if (incoming.topic !== deps.topics.paymentRequests) return;
    let request: payment.PaymentRequest;
    try {
      request = payment.PaymentRequest.decode(incoming.value);
    } catch (error) {
      throw new PermanentError(`undecodable payment request: ${(error as Error).message}`);
    }
    try {
      await deps.payments.handleRequest(request);
    } catch (error) {
      throw asTransient(error);
    }
  };
}

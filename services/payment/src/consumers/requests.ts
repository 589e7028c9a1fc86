import { Header, type IncomingMessage, PermanentError, type TopicNames } from "@taituri/kafka";
import { contracts, payment } from "@taituri/proto";
import { asTransient, type Payments } from "../payments.ts";

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
    const type = incoming.headers[Header.type] || contracts.PAYMENT_REQUEST_TYPE;
    switch (type) {
      case contracts.PAYMENT_REQUEST_TYPE: {
        const request = decode("payment request", () => payment.PaymentRequest.decode(incoming.value));
        await transient(() => deps.payments.handleRequest(request));
        return;
      }
      case contracts.CANCEL_ORDER_TYPE: {
        const cancel = decode("cancel order", () => payment.CancelOrder.decode(incoming.value));
        await transient(() => deps.payments.cancel(cancel));
        return;
      }
      default:
        throw new PermanentError(
          `unknown content type ${JSON.stringify(type)} on the payment requests topic`,
        );
    }
  };
}

function decode<T>(what: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    throw new PermanentError(`undecodable ${what}: ${(error as Error).message}`);
  }
}

async function transient(work: () => Promise<unknown>): Promise<void> {
  try {
    await work();
  } catch (error) {
    throw asTransient(error);
  }
}

import { contracts, type fulfilment } from "@taituri/proto";
import type { PostalAddress } from "../domain/delivery.ts";

/**
 * What a shop receives for a paid order: the JSON body of the deliverer's POST, built from the
 * OrderPaid record, the shop's catalog entry (its language, its pickup points) and a design URL
 * made for this attempt. Everything else in it is the same on every attempt, `id` above all: the
 * shop deduplicates on it. Never the order id, the conversation id or the shopper's phone number:
 * the shop knows the order by its number.
 */
export interface OrderPaidBody {
  /** "order.paid:<number>", also sent as the Taituri-Event-Id header. */
  id: string;
  type: "order.paid";
  /** Unix seconds of the payment. */
  created: number;
  data: { order: ShopOrder };
}

export interface ShopOrder {
  number: string;
  shop: string;
  product: { id: string; name: string };
  price: { amount: number; currency: string; formatted: string };
  /** A signed URL of the design, valid until imageUrlExpiresAt (made fresh at each attempt). */
  design: { imageUrl: string; imageUrlExpiresAt: string };
  recipient: string;
  /** Null for an order placed before the shopper was asked where the gift goes. */
  delivery: ShopDelivery | null;
  paidAt: string;
}

export type ShopDelivery =
  | {
      method: "address";
      address: PostalAddress;
    }
  | {
      method: "pickup";
      /** name and address from the catalog; absent if the point has left the catalog since. */
      location: { id: string; name?: string; address?: string };
      /** Who collects it. */
      name: string;
    };

/** What the body needs of the shop's catalog entry. */
export interface BodyShop {
  language: string;
  delivery?: {
    pickup?: readonly { id: string; name: Record<string, string>; address: string }[] | undefined;
  };
}

/** An OrderPaid the deliverer can post: the fields the body cannot do without are there. */
export type PaidOrder = fulfilment.OrderPaid & { paidAt: Date };

/** What is missing from a record for it to become a body, or undefined: a record without these is refused. */
export function orderPaidProblem(order: fulfilment.OrderPaid): string | undefined {
  for (const field of ["eventId", "orderNumber", "shopId"] as const)
    if (!order[field]) return `OrderPaid without ${field}`;
  if (!order.paidAt) return `OrderPaid ${order.eventId} without paid_at`;
  return undefined;
}

export function orderPaidBody(
  order: PaidOrder,
  shop: BodyShop | undefined,
  design: { url: string; expiresAt: Date },
): OrderPaidBody {
  const language = shop?.language ?? "en";
  return {
    id: order.eventId,
    type: "order.paid",
    created: Math.floor(order.paidAt.getTime() / 1000),
    data: {
      order: {
        number: order.orderNumber,
        shop: order.shopId,
        product: { id: order.productId, name: order.productName },
        price: {
          amount: order.amount,
          currency: order.currency,
          formatted: contracts.formatPrice(order.amount, order.currency, language),
        },
        design: { imageUrl: design.url, imageUrlExpiresAt: design.expiresAt.toISOString() },
        recipient: order.recipient,
        delivery: shopDelivery(order, shop, language),
        paidAt: order.paidAt.toISOString(),
      },
    },
  };
}

function shopDelivery(order: PaidOrder, shop: BodyShop | undefined, language: string): ShopDelivery | null {
  const method = order.delivery?.method;
  if (!method) return null;
  if (method.$case === "address") {
    const { name, line1, line2, city, postcode, country } = method.value;
    return {
      method: "address",
      address: { name, line1, ...(line2 ? { line2 } : {}), city, postcode, country },
    };
  }
  const { locationId, name } = method.value;
  const point = shop?.delivery?.pickup?.find((p) => p.id === locationId);
  return {
    method: "pickup",
    location: point
      ? {
          id: locationId,
          name: point.name[language] ?? Object.values(point.name)[0] ?? locationId,
          address: point.address,
        }
      : { id: locationId },
    name,
  };
}

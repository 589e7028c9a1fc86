import type { payment } from "@taituri/proto";
import type { PickupPoint, PricedShop } from "./catalog.ts";

/** A postal address as the shop, the provider and the order all take it. */
export interface PostalAddress {
  /** Who the parcel is addressed to. */
  name: string;
  line1: string;
  line2?: string;
  city: string;
  postcode: string;
  /** ISO 3166-1 alpha-2, one of the shop's delivery countries. */
  country: string;
}

/**
 * Where a paid gift goes, as stored with its order: a postal address, or one of the shop's pickup
 * points (with the point as the catalog described it when the order was made, so the order still
 * says where to take the gift if the catalog changes). The shopper's personal data: shown to the
 * shopper on the checkout page, given to Stripe as the payment's shipping address and to the shop,
 * never put in logs, span attributes, metric labels or error messages.
 */
export type OrderDelivery =
  | ({ method: "address" } & PostalAddress)
  | {
      method: "pickup";
      locationId: string;
      /** Who collects it. */
      name: string;
      /** The pickup point, in the shop's language. */
      location: { name: string; address: string };
    };

export type DeliveryAnswer =
  | { ok: true; delivery: OrderDelivery; recipient: string }
  /** The reason names what is missing or not served, never a value the shopper gave. */
  | { ok: false; reason: string };

const blank = (text: string | undefined) => !text?.trim();

/**
 * Whether a request says where the gift goes in a way the shop can serve: a complete address in one
 * of its countries, or one of its pickup points, and the recipient's name. The conversation checks
 * the address's shape before it asks; this is the shop's own check, as checkPrice is for the price.
 */
export function readDelivery(
  shop: PricedShop,
  request: Pick<payment.PaymentRequest, "delivery" | "recipient">,
): DeliveryAnswer {
  if (blank(request.recipient)) return { ok: false, reason: "no recipient" };
  const method = request.delivery?.method;
  if (!method) return { ok: false, reason: "no delivery" };
  if (method.$case === "address") {
    const a = method.value;
    for (const field of ["name", "line1", "city", "postcode", "country"] as const)
      if (blank(a[field])) return { ok: false, reason: `delivery address without ${field}` };
    if (!/^[A-Z]{2}$/.test(a.country))
      return { ok: false, reason: "delivery country is not an ISO 3166-1 alpha-2 code" };
    if (!shop.delivery.countries.includes(a.country))
      return {
        ok: false,
        reason: `shop ${shop.id} does not deliver to ${a.country} (only ${shop.delivery.countries.join(", ")})`,
      };
    return {
      ok: true,
      recipient: request.recipient.trim(),
      delivery: {
        method: "address",
        name: a.name.trim(),
        line1: a.line1.trim(),
        ...(blank(a.line2) ? {} : { line2: a.line2.trim() }),
        city: a.city.trim(),
        postcode: a.postcode.trim(),
        country: a.country,
      },
    };
  }
  const p = method.value;
  if (blank(p.name)) return { ok: false, reason: "pickup without the name of who collects it" };
  const point = shop.delivery.pickup?.find((candidate) => candidate.id === p.locationId);
  if (!point) return { ok: false, reason: `shop ${shop.id} has no pickup point "${p.locationId}"` };
  return {
    ok: true,
    recipient: request.recipient.trim(),
    delivery: {
      method: "pickup",
      locationId: point.id,
      name: p.name.trim(),
      location: { name: pointName(shop, point), address: point.address },
    },
  };
}

function pointName(shop: PricedShop, point: PickupPoint): string {
  return point.name[shop.language] ?? Object.values(point.name)[0] ?? point.id;
}

/** The stored delivery as the contracts carry it (fulfilment.v1.OrderPaid). */
export function deliveryMessage(delivery: OrderDelivery): payment.Delivery {
  if (delivery.method === "pickup")
    return { method: { $case: "pickup", value: { locationId: delivery.locationId, name: delivery.name } } };
  const { name, line1, line2, city, postcode, country } = delivery;
  return {
    method: { $case: "address", value: { name, line1, line2: line2 ?? "", city, postcode, country } },
  };
}

/** The delivery as lines to show a person (the checkout page, the orders CLI). */
export function deliveryLines(delivery: OrderDelivery): string[] {
  if (delivery.method === "pickup")
    return [
      `pickup at ${delivery.location.name}`,
      delivery.location.address,
      `collected by ${delivery.name}`,
    ];
  return [
    delivery.name,
    delivery.line1,
    ...(delivery.line2 ? [delivery.line2] : []),
    `${delivery.postcode} ${delivery.city}`,
    delivery.country,
  ];
}

/** Longest tracking URL a shop may give: it travels to the shopper in a WhatsApp message. */
export const MAX_TRACKING_URL = 2000;

/** Why a tracking URL cannot be sent to a shopper, or undefined when it can (http or https only). */
export function trackingUrlProblem(url: string): string | undefined {
  if (url.length > MAX_TRACKING_URL) return `tracking URL longer than ${MAX_TRACKING_URL} characters`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "tracking URL is not a URL";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    return "tracking URL must be http or https";
  return undefined;
}

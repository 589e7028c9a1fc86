import { z } from "zod";

/**
 * The payment service's own reading of the shops' catalog: only what it charges for (shop,
 * currency, product, price), where the shop delivers, and where its paid orders go. It reads the same catalog file the conversation offers from
 * (PAYMENT_CATALOG_FILE) and validates it itself, so a request built from another version of the
 * catalog, or one written to the topic by anything else, cannot set a price.
 */
const country = z.string().regex(/^[A-Z]{2}$/, "an ISO 3166-1 alpha-2 code");

/** A place where shoppers collect their gift instead of having it posted. */
const pickupPoint = z.object({
  id: z.string().min(1),
  name: z.record(z.string(), z.string().min(1)),
  // One line, as people read it: "Calle Mayor 1, 28013 Madrid".
  address: z.string().min(1),
});

const shop = z.object({
  id: z.string().min(1),
  language: z.string().regex(/^[a-z]{2}$/),
  currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code"),
  product: z.object({
    id: z.string().min(1),
    name: z.record(z.string(), z.string().min(1)),
    // Minor units: 1990 = 19.90 EUR.
    price: z.number().int().positive(),
  }),
  // A payment request must name an address in one of these countries, or one of these pickup points.
  delivery: z.object({
    countries: z.array(country).min(1),
    pickup: z.array(pickupPoint).optional(),
  }),
  // Where the fulfilment deliverer posts the shop's paid orders; none: the shop uses the orders CLI.
  fulfilment: z.object({ url: z.url({ protocol: /^https?$/ }) }).optional(),
});

export const priceCatalogSchema = z.object({ shops: z.array(shop).min(1) }).superRefine((c, ctx) => {
  const ids = c.shops.map((s) => s.id);
  if (new Set(ids).size !== ids.length)
    ctx.addIssue({ code: "custom", path: ["shops"], message: "shop ids repeat" });
  c.shops.forEach((s, i) => {
    const points = (s.delivery.pickup ?? []).map((p) => p.id);
    if (new Set(points).size !== points.length)
      ctx.addIssue({
        code: "custom",
        path: ["shops", i, "delivery", "pickup"],
        message: "pickup ids repeat",
      });
  });
});

export type PriceCatalog = z.infer<typeof priceCatalogSchema>;
export type PricedShop = PriceCatalog["shops"][number];
export type PickupPoint = z.infer<typeof pickupPoint>;

export function parsePriceCatalog(data: unknown): PriceCatalog {
  return priceCatalogSchema.parse(data);
}

export interface PriceQuestion {
  shopId: string;
  productId: string;
  amount: number;
  currency: string;
}

export type PriceAnswer = { ok: true; shop: PricedShop; productName: string } | { ok: false; reason: string };

/** Whether a request charges exactly what the catalog says; the reason names the difference. */
export function checkPrice(catalog: PriceCatalog, q: PriceQuestion): PriceAnswer {
  const found = catalog.shops.find((s) => s.id === q.shopId);
  if (!found) return { ok: false, reason: `unknown shop ${q.shopId}` };
  if (found.product.id !== q.productId)
    return { ok: false, reason: `shop ${q.shopId} does not sell product ${q.productId}` };
  if (q.amount !== found.product.price || q.currency !== found.currency)
    return {
      ok: false,
      reason: `amount ${q.amount} ${q.currency} differs from the catalog's ${found.product.price} ${found.currency}`,
    };
  const productName = found.product.name[found.language] ?? found.product.id;
  return { ok: true, shop: found, productName };
}

import { z } from "@taituri/config";

const priceTable = z.object({
  fallback: z.number().nonnegative(),
  // provider → model → quality → size → US cents per image; "*" matches anything.
  providers: z.record(
    z.string(),
    z.record(z.string(), z.record(z.string(), z.record(z.string(), z.number().nonnegative()))),
  ),
});
export type PriceTable = z.infer<typeof priceTable>;

export const parsePriceTable = (raw: unknown): PriceTable => priceTable.parse(raw);

export interface CallShape {
  provider: string;
  model: string;
  quality: string;
  size: string;
  images: number;
}

/** Estimated price of one provider call in US cents (the list price per image times the images). */
export function estimateCents(table: PriceTable, call: CallShape): number {
  const pick = <T>(map: Record<string, T> | undefined, key: string) => map?.[key] ?? map?.["*"];
  const perImage = pick(
    pick(pick(pick(table.providers, call.provider), call.model), call.quality),
    call.size,
  );
  return round((perImage ?? table.fallback) * call.images);
}

/**
 * The cost the limiter's budgets count for a round, in whole cents: the estimate rounded up, at
 * least 1 (a free local render still counts as one unit of work), at most the rule set's maxCost.
 */
export function limiterCost(cents: number, maxCost: number): number {
  return Math.min(maxCost, Math.max(1, Math.ceil(cents)));
}

const round = (cents: number) => Math.round(cents * 1000) / 1000;

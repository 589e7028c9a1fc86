import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** At most one count of the pending deliveries per this long: the two gauges read one query. */
const STATS_TTL_MS = 1000;

/** What the fulfilment deliverer measures (docs/orders.md and docs/operations.md use them). */
export function createFulfilmentMetrics(
  registry: Registry,
  pendingStats: () => Promise<{ count: number; oldest: Date | null }>,
  now: () => Date = () => new Date(),
) {
  let cached: { at: number; stats: Promise<{ count: number; oldest: Date | null } | undefined> } | undefined;
  const stats = () => {
    const at = now().getTime();
    if (!cached || at - cached.at > STATS_TTL_MS)
      cached = {
        at,
        // A scrape during a MongoDB outage reports nothing rather than failing /metrics whole.
        stats: pendingStats().catch(() => undefined),
      };
    return cached.stats;
  };
  return {
    attempts: new Counter({
      name: "fulfilment_delivery_attempts_total",
      help: "Posts of paid orders to shops by outcome (delivered, http_3xx, http_4xx, http_5xx, timeout, network, abandoned)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    attemptSeconds: new Histogram({
      name: "fulfilment_delivery_attempt_seconds",
      help: "Time of one post of a paid order to its shop, by outcome",
      labelNames: ["outcome"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    received: new Counter({
      name: "fulfilment_orders_received_total",
      help: "Paid orders consumed by outcome (stored: a new delivery; duplicate: a redelivered record)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    withoutEndpoint: new Counter({
      name: "fulfilment_orders_without_endpoint_total",
      help: "Paid orders of shops with no endpoint, left to the orders CLI, by shop",
      labelNames: ["shop"],
      registers: [registry],
    }),
    pending: new Gauge({
      name: "fulfilment_deliveries_pending",
      help: "Paid orders not yet acknowledged by their shop (counted in MongoDB at scrape time)",
      registers: [registry],
      async collect() {
        const s = await stats();
        if (s) this.set(s.count);
      },
    }),
    oldestPending: new Gauge({
      name: "fulfilment_oldest_pending_delivery_seconds",
      help: "Age of the oldest paid order not yet acknowledged by its shop (0: none)",
      registers: [registry],
      async collect() {
        const s = await stats();
        if (s) this.set(s.oldest ? Math.max(0, (now().getTime() - s.oldest.getTime()) / 1000) : 0);
      },
    }),
    shipped: new Counter({
      name: "fulfilment_shipped_calls_total",
      help: "Shops' signed shipped calls by outcome (shipped, already_shipped, not_paid, bad_request, bad_signature)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
  };
}

export type FulfilmentMetrics = ReturnType<typeof createFulfilmentMetrics>;

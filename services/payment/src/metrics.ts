import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { ORDER_STATES } from "./domain/order.ts";

/** What the payment service measures (docs/payment.md lists the queries). */
export function createMetrics(registry: Registry, countByState: () => Promise<Record<string, number>>) {
  const byState = async () => {
    try {
      return await countByState();
    } catch {
      // A scrape during a MongoDB outage reports nothing rather than failing /metrics whole.
      return undefined;
    }
  };
  return {
    /** Every change an order went through, by the state it entered. */
    transitions: new Counter({
      name: "payment_order_transitions_total",
      help: "Order state changes by from-state and to-state",
      labelNames: ["from", "to"],
      registers: [registry],
    }),
    orders: new Gauge({
      name: "payment_orders",
      help: "Orders by current state (counted in MongoDB at scrape time)",
      labelNames: ["state"],
      registers: [registry],
      async collect() {
        const counts = await byState();
        if (!counts) return;
        for (const state of ORDER_STATES) this.set({ state }, counts[state] ?? 0);
      },
    }),
    /**
     * Paid (or later shipped or refunded) orders over orders that ever got a link: how many shoppers who saw
     * a checkout paid. The rate of the counters below gives the same over a window.
     */
    conversion: new Gauge({
      name: "payment_link_conversion_ratio",
      help: "Orders paid over orders that got a checkout link (all time, from MongoDB)",
      registers: [registry],
      async collect() {
        const c = await byState();
        if (!c) return;
        // Money taken, whatever happened after (kept, shipped, or given back).
        const paid = (c.paid ?? 0) + (c.shipped ?? 0) + (c.refund_due ?? 0) + (c.refunded ?? 0);
        const linked = paid + (c.link_sent ?? 0) + (c.expired ?? 0) + (c.failed ?? 0) + (c.cancelled ?? 0);
        this.set(linked === 0 ? 0 : paid / linked);
      },
    }),
    linksCreated: new Counter({
      name: "payment_links_created_total",
      help: "Checkout links opened (first and retried sessions)",
      labelNames: ["provider"],
      registers: [registry],
    }),
    paid: new Counter({
      name: "payment_orders_paid_total",
      help: "Orders paid",
      labelNames: ["provider"],
      registers: [registry],
    }),
    /** Orders the shop said it sent (the orders CLI, or the shop's signed call). */
    shipped: new Counter({
      name: "payment_orders_shipped_total",
      help: "Orders marked shipped by the shop",
      registers: [registry],
    }),
    linkToPaid: new Histogram({
      name: "payment_link_to_paid_seconds",
      help: "Time from the first checkout link to the payment",
      buckets: [10, 30, 60, 120, 300, 600, 1800, 3600, 86400],
      registers: [registry],
    }),
    providerLatency: new Histogram({
      name: "payment_provider_request_seconds",
      help: "Provider API calls by operation and result",
      labelNames: ["provider", "operation", "result"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    providerErrors: new Counter({
      name: "payment_provider_errors_total",
      help: "Provider API calls that failed, by kind (refused: permanent; transient: retried)",
      labelNames: ["provider", "operation", "kind"],
      registers: [registry],
    }),
    /**
     * CancelOrders by reason (shopper, replaced) and outcome: cancelled, already_cancelled (a
     * redelivery), already_paid (the payment landed first), unknown_order.
     */
    cancellations: new Counter({
      name: "payment_order_cancellations_total",
      help: "Cancel requests by reason (shopper, replaced) and outcome (cancelled, already_cancelled, already_paid, unknown_order)",
      labelNames: ["reason", "outcome"],
      registers: [registry],
    }),
    /** Refunds completed at the provider, by reason (cancelled_before_payment, by_shop). */
    refunds: new Counter({
      name: "payment_refunds_total",
      help: "Refunds completed by reason (cancelled_before_payment, by_shop)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    requests: new Counter({
      name: "payment_requests_total",
      help: "Payment requests by outcome (session_opened, link_resent, succeeded_resent, rejected, refused)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    /**
     * What the retention sweep forgot (PAYMENT_RETENTION_DAYS): unpaid_order (deleted with its
     * changes, sessions and provider events), paid_order (replaced by its tombstone), delivery (a
     * delivery to the shop, with its attempts and outcomes).
     */
    retentionRemoved: new Counter({
      name: "payment_retention_removed_total",
      help: "Records past PAYMENT_RETENTION_DAYS forgotten by the sweep, by what (unpaid_order: deleted; paid_order: replaced by its tombstone; delivery: a delivery to the shop, deleted)",
      labelNames: ["what"],
      registers: [registry],
    }),
    webhooks: new Counter({
      name: "payment_webhooks_total",
      help: "Provider webhooks by outcome (applied, duplicate, stale, ignored, unknown_order, double_charge, bad_signature)",
      labelNames: ["provider", "outcome"],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

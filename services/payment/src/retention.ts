import type { Logger } from "@taituri/logging";
import type { OrderSweep } from "./adapters/store.ts";
import { retentionCutoff } from "./domain/retention.ts";
import type { Metrics } from "./metrics.ts";

/** Orders, and deliveries, forgotten per look: a look never holds the sweeper's loop up for long. */
export const RETENTION_BATCH = 100;

export interface RetentionDeps {
  orders: { sweepExpired(before: Date, at: Date, limit: number): Promise<OrderSweep> };
  deliveries: {
    sweepExpired(
      before: Date,
      limit: number,
    ): Promise<{ deliveries: number; attempts: number; outcomes: number; examined: number }>;
  };
  metrics: Pick<Metrics, "retentionRemoved">;
  logger: Logger;
  /** PAYMENT_RETENTION_DAYS and PAYMENT_RETENTION_SWEEP_MS. */
  days: number;
  everyMs: number;
  now?: () => Date;
}

/**
 * The retention of orders and deliveries as a step of the sweeper's loop: at most every `everyMs`
 * it forgets a batch of the orders and of the deliveries past the retention (store.ts and
 * fulfilment/store.ts say how); a full batch means more may wait, so the loop's next turn looks
 * again instead of `everyMs` later. Any replica may sweep: what another forgot is not found again,
 * and two forgetting one order share its claim (PaymentStore.forget).
 */
export function createRetentionSweep(deps: RetentionDeps): () => Promise<void> {
  const now = deps.now ?? (() => new Date());
  let sweptAt: number | undefined;
  return async () => {
    const at = now();
    if (sweptAt !== undefined && at.getTime() - sweptAt < deps.everyMs) return;
    const before = retentionCutoff(at, deps.days);
    const orders = await deps.orders.sweepExpired(before, at, RETENTION_BATCH);
    const deliveries = await deps.deliveries.sweepExpired(before, RETENTION_BATCH);
    if (Math.max(orders.examined, deliveries.examined) < RETENTION_BATCH) sweptAt = at.getTime();
    const removed = {
      unpaid_order: orders.deleted,
      paid_order: orders.tombstoned,
      delivery: deliveries.deliveries,
    };
    for (const [what, n] of Object.entries(removed))
      if (n > 0) deps.metrics.retentionRemoved.inc({ what }, n);
    if (removed.unpaid_order + removed.paid_order + removed.delivery > 0)
      deps.logger.info(
        {
          ordersDeleted: orders.deleted,
          ordersTombstoned: orders.tombstoned,
          deliveries: deliveries.deliveries,
          attempts: deliveries.attempts,
          outcomes: deliveries.outcomes,
        },
        "orders and deliveries past their retention forgotten",
      );
  };
}

import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@taituri/logging";
import { Registry } from "prom-client";
import type { OrderSweep } from "./adapters/store.ts";
import { createMetrics } from "./metrics.ts";
import { createRetentionSweep, RETENTION_BATCH } from "./retention.ts";

const DAY = 24 * 3600 * 1000;
const HOUR = 3600 * 1000;

/** The sweep with stores that answer what each test gives them, and record what they were asked. */
function build(answers: { orders: OrderSweep[]; deliveries: number[] }) {
  const asked: { orders: Date[]; deliveries: Date[] } = { orders: [], deliveries: [] };
  const logged: unknown[] = [];
  let clock = new Date("2025-06-01T00:00:00Z");
  const registry = new Registry();
  const logger = createLogger({ service: "test", level: "silent" });
  logger.info = ((fields: unknown) => {
    logged.push(fields);
  }) as typeof logger.info;
  const sweep = createRetentionSweep({
    orders: {
      async sweepExpired(before, _at, limit) {
        assert.equal(limit, RETENTION_BATCH);
        asked.orders.push(before);
        return answers.orders.shift() ?? { deleted: 0, tombstoned: 0, examined: 0 };
      },
    },
    deliveries: {
      async sweepExpired(before) {
        asked.deliveries.push(before);
        const n = answers.deliveries.shift() ?? 0;
        return { deliveries: n, attempts: 2 * n, outcomes: 2 * n, examined: n };
      },
    },
    metrics: createMetrics(registry, async () => ({})),
    logger,
    days: 90,
    everyMs: HOUR,
    now: () => clock,
  });
  return {
    sweep,
    asked,
    logged,
    advance: (ms: number) => {
      clock = new Date(clock.getTime() + ms);
    },
    removed: async () =>
      Object.fromEntries(
        ((await registry.getSingleMetric("payment_retention_removed_total")?.get())?.values ?? []).map(
          (v) => [v.labels.what, v.value],
        ),
      ),
  };
}

test("looks at most every PAYMENT_RETENTION_SWEEP_MS, for what ended the retention's days ago", async () => {
  const t = build({ orders: [], deliveries: [] });
  await t.sweep();
  assert.deepEqual(t.asked.orders, [new Date(Date.parse("2025-06-01T00:00:00Z") - 90 * DAY)]);
  assert.deepEqual(t.asked.deliveries, t.asked.orders);
  t.advance(HOUR - 1);
  await t.sweep();
  assert.equal(t.asked.orders.length, 1, "not again within the hour");
  t.advance(1);
  await t.sweep();
  assert.equal(t.asked.orders.length, 2);
  assert.deepEqual(t.logged, [], "nothing forgotten, nothing logged");
  assert.deepEqual(await t.removed(), {});
});

test("a full batch of orders or deliveries: the next turn of the loop looks again at once", async () => {
  const t = build({
    orders: [{ deleted: 60, tombstoned: 40, examined: RETENTION_BATCH }],
    deliveries: [3, RETENTION_BATCH],
  });
  await t.sweep();
  await t.sweep();
  await t.sweep();
  assert.equal(t.asked.orders.length, 3, "two full batches, then one that was not");
  await t.sweep();
  assert.equal(t.asked.orders.length, 3);
});

test("counts what it forgot by what, and logs each sweep that forgot something", async () => {
  const t = build({ orders: [{ deleted: 2, tombstoned: 1, examined: 3 }], deliveries: [4] });
  await t.sweep();
  assert.deepEqual(await t.removed(), { unpaid_order: 2, paid_order: 1, delivery: 4 });
  assert.deepEqual(t.logged, [
    { ordersDeleted: 2, ordersTombstoned: 1, deliveries: 4, attempts: 8, outcomes: 8 },
  ]);
});

import { Counter, Histogram, type Registry } from "prom-client";

/** What the limiter measures, so limits can be tuned from real traffic (docs/limiter.md). */
export function createMetrics(registry: Registry) {
  return {
    /** One per limit evaluated by Consume: allowed, denied, or shadow_denied (would have denied). */
    decisions: new Counter({
      name: "limiter_decisions_total",
      help: "Consume decisions per limit and outcome",
      labelNames: ["rule_set", "limit", "outcome"],
      registers: [registry],
    }),
    /** One per RPC: allowed, denied, replayed, refunded, …, failed_open, failed_closed, invalid, unauthenticated. */
    calls: new Counter({
      name: "limiter_calls_total",
      help: "Limiter RPCs by outcome",
      labelNames: ["rpc", "rule_set", "outcome"],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "limiter_rpc_duration_seconds",
      help: "Time to answer a limiter RPC, authentication included",
      labelNames: ["rpc"],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: "limiter_redis_errors_total",
      help: "Redis calls that failed",
      registers: [registry],
    }),
    /**
     * How full a subject's bucket is after an admitted Consume (1 = at its limit). Its distribution
     * per limit says how much of a limit real shoppers use: a limit nobody comes near is too loose
     * to stop abuse; one that many reach is bothering normal use.
     */
    usage: new Histogram({
      name: "limiter_usage_ratio",
      help: "Fraction of the limit in use after an admitted Consume",
      labelNames: ["limit"],
      buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1],
      registers: [registry],
    }),
    reloads: new Counter({
      name: "limiter_rules_reloads_total",
      help: "Rules file reloads by result (ok, error: the old rules stay in force)",
      labelNames: ["result"],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

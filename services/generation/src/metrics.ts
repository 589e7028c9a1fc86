import { Counter, Histogram, type Registry } from "prom-client";

/**
 * The generation service's metrics. Paid calls per accepted round =
 * generation_paid_calls_total / generation_rounds_accepted_total: 1 when every round pays once,
 * above 1 only after crash take-overs (at most GENERATION_MAX_ATTEMPTS).
 */
export function createMetrics(registry: Registry) {
  return {
    rounds: new Counter({
      name: "generation_rounds_total",
      help: "Round deliveries by outcome: completed, failed, rejected, duplicate, busy, superseded, invalid, handed_back (shutdown)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    accepted: new Counter({
      name: "generation_rounds_accepted_total",
      help: "Rounds the limiter admitted (counted once per round, on its first claim)",
      registers: [registry],
    }),
    claims: new Counter({
      name: "generation_claims_total",
      help: "Claims of a round by kind: first, or take-over after an expired lease",
      labelNames: ["kind"],
      registers: [registry],
    }),
    calls: new Counter({
      name: "generation_provider_calls_total",
      help: "Image provider calls by provider and outcome",
      labelNames: ["provider", "outcome"],
      registers: [registry],
    }),
    paidCalls: new Counter({
      name: "generation_paid_calls_total",
      help: "Provider calls the provider may bill (succeeded, 5xx, timeout, garbled answer)",
      labelNames: ["provider"],
      registers: [registry],
    }),
    costCents: new Counter({
      name: "generation_cost_cents_total",
      help: "Estimated provider spend in US cents, by shop",
      labelNames: ["shop"],
      registers: [registry],
    }),
    callSeconds: new Histogram({
      name: "generation_provider_call_seconds",
      help: "Provider call latency by provider and outcome",
      labelNames: ["provider", "outcome"],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 20, 40, 60, 90],
      registers: [registry],
    }),
    limiter: new Counter({
      name: "generation_limiter_calls_total",
      help: "Limiter calls by rpc and result (allowed, denied, unavailable, refunded, …)",
      labelNames: ["rpc", "result"],
      registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

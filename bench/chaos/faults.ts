/**
 * The chaos suite's fault schedule: which fault, when, for how long, drawn from a seeded PRNG so a
 * run can be repeated with `--seed`. Pure: the run (run.ts) carries it out and records what it did.
 */

/** Every fault the suite knows, by the name `--faults` takes. */
export const FAULTS = [
  /** Every webhook delivered 2–3 times, some copies at once, some minutes later. */
  "duplicates",
  /** The Graph API answers sends slowly for a while. */
  "slow-acks",
  /** Each service SIGKILLed at random points, then started again. */
  "kill",
  /** The Kafka broker stopped and started again. */
  "kafka",
  /** The MongoDB-wire server stopped and started again. */
  "mongo",
  /** FerretDB's PostgreSQL stopped and started again (FerretDB only). */
  "postgres",
  /** Redis gone for 10 s (its keys with it). */
  "redis",
  /** The image provider slow, then failing, then refusing connections. */
  "images",
  /** The payment provider's "completed" webhooks delayed and duplicated. */
  "psp",
] as const;
export type Fault = (typeof FAULTS)[number];

export const SERVICES = ["ingress", "conversation", "generation", "payment", "limiter"] as const;
export type ServiceName = (typeof SERVICES)[number];

/** mulberry32: small, fast and good enough to draw a schedule; not for anything secret. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Window =
  | { kind: "kill"; service: ServiceName }
  | { kind: "kafka" }
  | { kind: "mongo" }
  | { kind: "postgres" }
  | { kind: "redis" }
  | { kind: "slow-acks"; delayMs: number }
  | { kind: "images-slow"; delayMs: number }
  | { kind: "images-fail" }
  | { kind: "images-refuse" };

/** One planned fault: from `atMs` after the start, for `forMs` (0 for a kill: the restart is at once). */
export type Planned = Window & { atMs: number; forMs: number };

export interface ScheduleOptions {
  durationMs: number;
  faults: ReadonlySet<Fault>;
  /** Whether FerretDB's PostgreSQL exists to be stopped. */
  postgres: boolean;
  random: () => number;
}

/**
 * Faults spread over the middle of the run (10–80 % of it), so shoppers are under way when each
 * lands and the last quarter shows recovery. Infrastructure outages never overlap one another: two
 * at once would tell which guarantee broke less clearly, and a single failover at a time is the
 * case the services promise to ride out. Kills do overlap them, as crashes would.
 */
export function planFaults(o: ScheduleOptions): Planned[] {
  const d = o.durationMs;
  const at = (from: number, to: number) => Math.round(d * (from + (to - from) * o.random()));
  const plan: Planned[] = [];
  if (o.faults.has("kill")) {
    // One kill per service per started minute, at least one each.
    const perService = Math.max(1, Math.ceil(d / 60_000));
    for (const service of SERVICES)
      for (let i = 0; i < perService; i += 1)
        plan.push({ kind: "kill", service, atMs: at(0.1, 0.8), forMs: 0 });
  }
  // Outages take turns in slots of the middle of the run, in a seeded order.
  const outages: Planned[] = [];
  const outage = d < 120_000 ? 8_000 : 20_000;
  if (o.faults.has("kafka")) outages.push({ kind: "kafka", atMs: 0, forMs: Math.min(outage, 10_000) });
  if (o.faults.has("mongo")) outages.push({ kind: "mongo", atMs: 0, forMs: outage });
  if (o.faults.has("postgres") && o.postgres) outages.push({ kind: "postgres", atMs: 0, forMs: outage });
  if (o.faults.has("redis")) outages.push({ kind: "redis", atMs: 0, forMs: 10_000 });
  for (let i = outages.length - 1; i > 0; i -= 1) {
    const j = Math.floor(o.random() * (i + 1));
    [outages[i], outages[j]] = [outages[j] as Planned, outages[i] as Planned];
  }
  const slot = (d * 0.7) / Math.max(1, outages.length);
  outages.forEach((planned, i) => {
    const start = d * 0.1 + slot * i;
    const room = Math.max(0, slot - planned.forMs);
    plan.push({ ...planned, atMs: Math.round(start + room * o.random()) });
  });
  if (o.faults.has("slow-acks"))
    plan.push({ kind: "slow-acks", delayMs: 2_000, atMs: at(0.1, 0.6), forMs: d * 0.15 });
  if (o.faults.has("images")) {
    const w = Math.round(d * 0.1);
    plan.push({ kind: "images-slow", delayMs: 5_000, atMs: at(0.1, 0.3), forMs: w });
    plan.push({ kind: "images-fail", atMs: at(0.35, 0.5), forMs: w });
    plan.push({ kind: "images-refuse", atMs: at(0.55, 0.7), forMs: w });
  }
  return plan.sort((a, b) => a.atMs - b.atMs);
}

/** How a webhook is delivered: its copies, each with its delay after the first. */
export function deliveryPlan(random: () => number, lateMs: [number, number]): number[] {
  const copies = random() < 0.5 ? 2 : 3;
  const delays = [0];
  for (let i = 1; i < copies; i += 1) {
    const r = random();
    // Concurrent (same moment), soon (Meta's first retry) or minutes later (a retry after an outage).
    if (r < 0.4) delays.push(0);
    else if (r < 0.8) delays.push(Math.round(500 + 2_000 * random()));
    else delays.push(Math.round(lateMs[0] + (lateMs[1] - lateMs[0]) * random()));
  }
  return delays;
}

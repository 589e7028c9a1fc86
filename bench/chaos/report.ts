/** The chaos run's report in markdown: what ran, what was injected when, and what held. */
import { type Check, chargesOf, latencies, type RunRecord } from "./check.ts";

export interface Summary {
  run: string;
  seed: number;
  short: boolean;
  startedAt: string;
  wallSeconds: number;
  runSeconds: number;
  shoppers: number;
  bsuidOnly: number;
  journeysPaid: number;
  messagesIn: number;
  sends: number;
  imageCalls: number;
  mongo: string;
  faults: { fault: string; target?: string; startMs: number; endMs?: number; note?: string }[];
  checks: Check[];
  logDir: string;
}

const s = (ms: number | undefined) => (ms === undefined ? "–" : `${(ms / 1000).toFixed(1)} s`);
const ms = (v: number | undefined) => (v === undefined ? "–" : v < 1000 ? `${Math.round(v)} ms` : s(v));

/** Replies per second from the first message in to the last reply out: the traffic, not the waiting. */
function throughput(record: RunRecord): string {
  const first = Math.min(...record.shoppers.flatMap((x) => x.inbound.map((m) => m.sentAt)));
  const sends = record.shoppers.flatMap((x) => x.mail.map((m) => m.at));
  const last = Math.max(...sends);
  if (!Number.isFinite(first) || !Number.isFinite(last) || last <= first) return "–";
  return `${(sends.length / ((last - first) / 1000)).toFixed(2)} replies/s over ${s(last - first)}`;
}

/** The compass of reliability: what was lost, duplicated, paid twice. */
export function reliability(r: RunRecord, checks: Check[]) {
  const lost = r.shoppers.reduce((n, x) => n + x.inbound.filter((m) => m.answeredAt === undefined).length, 0);
  // As the invariant counts them: copies beyond the first and beyond those the shopper asked for again.
  const duplicates = checks.find((c) => c.name === "no reply sent twice")?.violations ?? 0;
  const perRound = new Map<string, number>();
  for (const c of r.imageCalls) if (c.reply === "ok") perRound.set(c.round, (perRound.get(c.round) ?? 0) + 1);
  const calls = [...perRound.values()];
  const charges = r.shoppers.filter((x) => x.payAnswers.length > 0).map((x) => chargesOf(x));
  return {
    messagesLost: lost,
    duplicatesSent: duplicates,
    paidCallsPerRound: {
      rounds: calls.length,
      mean: calls.length ? Number((calls.reduce((a, b) => a + b, 0) / calls.length).toFixed(3)) : 0,
      max: Math.max(0, ...calls),
      faultedCalls: r.imageCalls.filter((c) => c.reply !== "ok").length,
    },
    chargesPerOrder: { orders: charges.length, max: Math.max(0, ...charges) },
    roundsRetriedByShoppers: r.shoppers.reduce((n, x) => n + x.roundsRetried, 0),
    webhookDeliveriesRefused: r.shoppers.reduce((n, x) => n + x.deliveriesRefused, 0),
    statuses: r.statuses ?? { posted: 0, refused: 0, lost: 0 },
  };
}

export function renderMarkdown(summary: Summary, record: RunRecord): string {
  const rel = reliability(record, summary.checks);
  const lat = latencies(record);
  const lines = [
    `# Chaos run ${summary.run}`,
    "",
    `${summary.short ? "Short run (CI). " : ""}Seed ${summary.seed}, started ${summary.startedAt}, ${summary.runSeconds} s of traffic (${summary.wallSeconds} s with start-up and checks), MongoDB-wire server: ${summary.mongo}. Service logs: \`${summary.logDir}\`.`,
    "",
    "## Traffic",
    "",
    "| shoppers | BSUID only | paid journeys | messages in | sends out | image calls |",
    "|---:|---:|---:|---:|---:|---:|",
    `| ${summary.shoppers} | ${summary.bsuidOnly} | ${summary.journeysPaid} | ${summary.messagesIn} | ${summary.sends} | ${summary.imageCalls} |`,
    "",
    `Throughput: ${throughput(record)} (first message in to last reply out).`,
    "",
    "First-reply latency (webhook sent to first reply recorded):",
    "",
    "| sent | n | p50 | p99 |",
    "|---|---:|---:|---:|",
    `| no fault window open | ${lat.quiet.n} | ${ms(lat.quiet.p50)} | ${ms(lat.quiet.p99)} |`,
    `| during a fault window | ${lat.faulted.n} | ${ms(lat.faulted.p50)} | ${ms(lat.faulted.p99)} |`,
    "",
    "## Faults injected",
    "",
    "| at | until | fault | target | note |",
    "|---:|---:|---|---|---|",
    ...summary.faults.map(
      (f) => `| ${s(f.startMs)} | ${s(f.endMs)} | ${f.fault} | ${f.target ?? ""} | ${f.note ?? ""} |`,
    ),
    "",
    "Besides the schedule: every webhook delivered 2–3 times (some copies at once, some seconds, some",
    "long after), and each paid order's provider webhook delivered again (at once and later), when",
    "the `duplicates` and `psp` faults are on.",
    "",
    "## Invariants",
    "",
    "| invariant | checked | violations |",
    "|---|---:|---:|",
    ...summary.checks.map(
      (c) => `| ${c.name} | ${c.count} | ${c.violations === 0 ? "0" : `**${c.violations}**`} |`,
    ),
    "",
    ...summary.checks
      .filter((c) => c.violations > 0)
      .flatMap((c) => [`### ${c.name}`, "", ...c.examples.map((e) => `- ${e}`), ""]),
    "## Reliability",
    "",
    `- Messages lost (never answered): ${rel.messagesLost}`,
    `- Duplicates sent: ${rel.duplicatesSent}`,
    `- Paid image calls per round: mean ${rel.paidCallsPerRound.mean}, max ${rel.paidCallsPerRound.max} over ${rel.paidCallsPerRound.rounds} rounds (${rel.paidCallsPerRound.faultedCalls} calls answered with an injected fault)`,
    `- Charges per order: max ${rel.chargesPerOrder.max} over ${rel.chargesPerOrder.orders} orders`,
    `- Rounds the shoppers had to start again ("Try again" after a failed round): ${rel.roundsRetriedByShoppers}`,
    `- Webhook deliveries not answered 200 (re-sent, as Meta does): ${rel.webhookDeliveriesRefused}`,
    `- Meta's "sent" statuses posted for the bot's sends: ${rel.statuses.posted} accepted, ${rel.statuses.refused} answers other than 200 on the way, ${rel.statuses.lost} given up`,
    "",
  ];
  return lines.join("\n");
}

/**
 * The chaos suite's invariants, judged from the run's own records only: what the recording Graph
 * API received, what the image provider was asked, what the checkout answered and what is in the
 * dead-letter topics. Pure, so each rule is unit-tested (check.test.ts).
 */
import type { Inbound, Read } from "./shopper.ts";
import { replyKey } from "./shopper.ts";

export interface ShopperRecord {
  index: number;
  /** The recipient's pseudonym: what the report names the shopper by. */
  id: string;
  /** The phone number or BSUID replies go to (kept out of the report). */
  recipient: string;
  bsuidOnly: boolean;
  inbound: Inbound[];
  seen: number;
  /** Every send the Graph API accepted for this shopper, in arrival order (duplicates included). */
  mail: { at: number; read: Read }[];
  stuck?: { step: string; waited: string } | undefined;
  paid: boolean;
  orderNumber?: string | undefined;
  payAnswers: number[];
  /** The page title of each answer (aligned with payAnswers). */
  payPages?: string[];
  deliveriesRefused: number;
  /** Rounds started again after the shopper was told they failed. */
  roundsRetried: number;
  /** Replies the shopper asked for again (by replyKey): that many more copies are not duplicates. */
  again: Record<string, number>;
}

export interface RunRecord {
  shoppers: ShopperRecord[];
  /** Each request to the image provider: the round it was for (the `user` field) and its answer. */
  imageCalls: { round: string; reply: string }[];
  kills: { service: string; atMs: number }[];
  crashes: { service: string; atMs: number; exit: string }[];
  orderProblems: { shopper: number; step: string; expected: string; got: string }[];
  /** Undefined: the dead-letter topics could not be read (itself a failure). */
  deadLetters?: { topic: string; reason: string; error: string; key: string; atMs: number }[] | undefined;
  pspDeliveries: { shopper: number; status: number; delayMs: number }[];
  /** Meta's "sent" statuses for the bot's sends: accepted, answers other than 200 on the way, given up. */
  statuses?: { posted: number; refused: number; lost: number };
}

export interface Check {
  name: string;
  /** How many things were checked. */
  count: number;
  violations: number;
  /** Up to 20 examples, ids as pseudonyms. */
  examples: string[];
}

const check = (name: string, count: number, problems: string[]): Check => ({
  name,
  count,
  violations: problems.length,
  examples: problems.slice(0, 20),
});

const PAID = /Payment received/;

/**
 * Charges the checkout made for a shopper, from its answers: each 200 to Pay, or, when every press
 * that charged lost its answer (a timeout, a reset), one if a later press was answered 409 with the
 * "Paid" page, the provider's word that this session was paid.
 */
export function chargesOf(s: Pick<ShopperRecord, "payAnswers" | "payPages">): number {
  const ok = s.payAnswers.filter((status) => status === 200).length;
  if (ok > 0) return ok;
  return s.payAnswers.some((status, i) => status === 409 && s.payPages?.[i] === "Paid") ? 1 : 0;
}
const SERVICE_COUNT = 5;
const CREATING = /Creating your designs/;

export function checkInvariants(r: RunRecord, _o: { recipientPseudonym: (id: string) => string }): Check[] {
  const checks: Check[] = [];
  const inbound = r.shoppers.flatMap((s) => s.inbound.map((m) => ({ s, m })));
  checks.push(
    check(
      "every inbound message answered",
      inbound.length,
      inbound
        .filter(({ m }) => m.answeredAt === undefined)
        .map(
          ({ s, m }) =>
            `shopper ${s.id}: ${m.step} (${m.wamid.split(".").slice(-2).join(".")}) never answered`,
        ),
    ),
  );
  const replies = r.shoppers.reduce((n, s) => n + s.mail.length, 0);
  checks.push(
    check(
      "no reply sent twice",
      replies,
      r.shoppers.flatMap((s) => {
        const seen = new Map<string, number>();
        const dups: string[] = [];
        for (const { read } of s.mail) {
          const key = replyKey(s.recipient, read);
          const n = (seen.get(key) ?? 0) + 1;
          seen.set(key, n);
          if (n > 1 + (s.again[key] ?? 0))
            dups.push(`shopper ${s.id}: "${read.type}: ${read.text.slice(0, 60)}" sent ${n} times`);
        }
        return dups;
      }),
    ),
  );
  checks.push(
    check(
      "each shopper's replies in order",
      r.shoppers.length,
      r.orderProblems.map((p) => {
        const s = r.shoppers.find((x) => x.index === p.shopper);
        return `shopper ${s?.id}: at ${p.step} expected ${p.expected}, got ${p.got}`;
      }),
    ),
  );
  checks.push(
    check(
      "every journey reaches its paid confirmation",
      r.shoppers.length,
      r.shoppers
        .filter((s) => !s.paid)
        .map((s) => `shopper ${s.id}: stopped at ${s.stuck?.step} (${s.stuck?.waited})`),
    ),
  );
  // Paid calls: one answered call per round; a second only after a generation kill (a lease that
  // expired under a dead worker, the documented take-over), counted apart.
  const rounds = new Map<string, { ok: number; faulted: number }>();
  for (const call of r.imageCalls) {
    const round = rounds.get(call.round) ?? { ok: 0, faulted: 0 };
    if (call.reply === "ok") round.ok += 1;
    else round.faulted += 1;
    rounds.set(call.round, round);
  }
  const generationKills = r.kills.filter((k) => k.service === "generation").length;
  checks.push(
    check(
      "one answered image call per round (two only after a generation kill)",
      rounds.size,
      [...rounds.entries()]
        // A round with no answered call failed, and its shopper was told so (a journey check).
        .filter(([, n]) => n.ok > (generationKills > 0 ? 2 : 1))
        .map(([round, n]) => `round ${round.slice(0, 8)}…: ${n.ok} answered calls, ${n.faulted} faulted`),
    ),
  );
  checks.push(
    check(
      "one charge per order",
      r.shoppers.filter((s) => s.payAnswers.length > 0).length,
      r.shoppers.flatMap((s) => {
        const charges = chargesOf(s);
        const confirmations = s.mail.filter((m) => PAID.test(m.read.text)).length;
        const problems: string[] = [];
        if (charges > 1) problems.push(`shopper ${s.id}: charged ${charges} times`);
        // Errors before a 200 are the page failing under a fault, pressed again: not a charge.
        if (s.payAnswers.length > 0 && charges === 0)
          problems.push(`shopper ${s.id}: Pay never went through (answers ${s.payAnswers.join(",")})`);
        // A second "paid" for one charge is a reply sent twice (counted there), not a second charge.
        if (charges === 1 && confirmations === 0)
          problems.push(`shopper ${s.id}: charged, and never told so`);
        return problems;
      }),
    ),
  );
  checks.push(
    check(
      "no conversation left generating past the watchdog",
      r.shoppers.filter((s) => s.mail.some((m) => CREATING.test(m.read.text))).length,
      r.shoppers
        .filter((s) => s.mail.length > 0 && CREATING.test(s.mail.at(-1)?.read.text ?? ""))
        .map((s) => `shopper ${s.id}: nothing after "Creating your designs"`),
    ),
  );
  checks.push(
    check(
      "every dead letter accounted for",
      r.deadLetters?.length ?? 0,
      r.deadLetters === undefined
        ? ["the dead-letter topics could not be read"]
        : r.deadLetters.map(
            (d) => `${d.topic} key ${d.key} at ${(d.atMs / 1000).toFixed(1)} s: ${d.reason} ${d.error}`,
          ),
    ),
  );
  checks.push(
    check(
      "no service exits on its own",
      SERVICE_COUNT,
      r.crashes.map((c) => `${c.service} exited (${c.exit}) at ${(c.atMs / 1000).toFixed(1)} s`),
    ),
  );
  return checks;
}

/** Percentiles of a list of numbers (nearest rank); undefined when empty. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** First-reply latency of inbound messages, split by whether a fault window was open when sent. */
export function latencies(
  r: RunRecord,
): Record<"quiet" | "faulted", { n: number; p50?: number; p99?: number }> {
  const of = (during: boolean) => {
    const ms = r.shoppers.flatMap((s) =>
      s.inbound
        .filter((m) => m.duringFault === during && m.answeredAt !== undefined)
        .map((m) => (m.answeredAt as number) - m.sentAt),
    );
    const p50 = percentile(ms, 50);
    const p99 = percentile(ms, 99);
    return { n: ms.length, ...(p50 !== undefined ? { p50 } : {}), ...(p99 !== undefined ? { p99 } : {}) };
  };
  return { quiet: of(false), faulted: of(true) };
}

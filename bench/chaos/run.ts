/**
 * `npm run chaos`: the whole system on servers of its own, N simulated shoppers going from hello to
 * a paid order, and faults injected on a seeded schedule; then invariants checked from the run's own
 * records (the recording Graph API, image provider and checkout answers), never from what the
 * services say of themselves. Writes bench/results/chaos-<timestamp>.{md,json}; exits 1 when an
 * invariant is violated. See bench/chaos/README.md.
 *
 *   npm run chaos -- [--shoppers 1000] [--duration 600] [--seed 1] [--faults kill,kafka,...] [--short]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createKafka } from "@taituri/kafka";
import { deadLetterTopics, readDeadLetter, readTopic } from "@taituri/kafka/dlq";
import { configurePseudonyms, createLogger, DEV_PSEUDONYM_KEY, pseudonym } from "@taituri/logging";
import { LocalProvider } from "@taituri/payment-service/local-provider";
import { type Check, checkInvariants, type RunRecord } from "./check.ts";
import {
  deliveryPlan,
  FAULTS,
  type Fault,
  type Planned,
  planFaults,
  prng,
  type ServiceName,
} from "./faults.ts";
import { reliability, renderMarkdown } from "./report.ts";
import { ChaosShopper, Mailboxes, postWebhook, type Read, StuckError, sentStatus } from "./shopper.ts";
import { APP_SECRET, ChaosSystem, PAYMENT_SECRET } from "./system.ts";

const { values } = parseArgs({
  options: {
    shoppers: { type: "string" },
    duration: { type: "string" },
    seed: { type: "string" },
    faults: { type: "string" },
    short: { type: "boolean", default: false },
    out: { type: "string" },
  },
  strict: true,
});
const positive = (name: string, value: string | undefined, fallback: number) => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`--${name} must be a positive whole number, not "${value}"`);
  return n;
};
const short = values.short ?? false;
const shoppers = positive("shoppers", values.shoppers, short ? 12 : 1000);
const durationMs = positive("duration", values.duration, short ? 90 : 600) * 1000;
const seed = positive("seed", values.seed, 1);
const faults = new Set<Fault>(
  (values.faults ?? FAULTS.join(","))
    .split(",")
    .map((f) => f.trim())
    .filter(Boolean)
    .map((f) => {
      if (!(FAULTS as readonly string[]).includes(f))
        throw new Error(`unknown fault "${f}"; the faults are ${FAULTS.join(", ")}`);
      return f as Fault;
    }),
);
const root = new URL("../..", import.meta.url).pathname;
const outDir = values.out ?? join(root, "bench/results");
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const run = `${stamp.replace(/\D/g, "").slice(2, 14)}-${seed}`;
const logDir = join(tmpdir(), `taituri-chaos-${run}`);
// Ids in the report are pseudonyms, as in the services' logs (a development key: these are fakes).
configurePseudonyms(process.env.LOG_PSEUDONYM_KEY ?? DEV_PSEUDONYM_KEY);
const log = (line: string) =>
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

const random = prng(seed);
// The statuses' delays draw from their own PRNG: the sends come in whatever order the run makes.
const statusJitter = prng((seed ^ 0x5a17) >>> 0);
// Late copies: "minutes later" in the full run; scaled to the short run's length.
const lateMs: [number, number] = short ? [10_000, 30_000] : [60_000, 180_000];
// The longest a reply may take without anything being wrong: the conversation's round watchdog
// (150 s), then the apology's send taken over from an ingress killed holding its claim (the claim's
// 60 s lease, OUTBOUND_CLAIM_LEASE_MS), with a minute to spare on a loaded machine. 200 s, used
// before, cut shoppers off while that apology was on its way (the 1,000-shopper run).
const replyTimeoutMs = 270_000;

interface FaultEvent {
  fault: string;
  target?: string;
  startMs: number;
  endMs?: number;
  note?: string;
}
const events: FaultEvent[] = [];
const crashes: { service: ServiceName; atMs: number; exit: string }[] = [];
let t0 = Date.now();
let trafficStarted = false;
const since = () => Date.now() - t0;
let openWindows = 0;

/** Late copies, provider redeliveries and statuses in flight: the run waits for them before checking. */
const pending = new Set<Promise<unknown>>();
/** Meta's statuses for the bot's sends: posted, and refused answers on the way. */
const statuses = { posted: 0, refused: 0, lost: 0 };

const system = new ChaosSystem({
  run,
  logDir,
  log,
  // Meta posts a "sent" status for every send it took, within a second or so, re-sent until
  // answered 200 like any webhook.
  onSend: (_phoneNumberId, body, wamid) => {
    const { body: status, signature } = sentStatus(body, wamid, APP_SECRET);
    const post = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.floor(statusJitter() * 900)));
      await postWebhook(
        `${system.ingressUrl}/webhook`,
        status,
        signature,
        Date.now() + replyTimeoutMs,
        () => {
          statuses.refused += 1;
        },
      ).then(
        () => {
          statuses.posted += 1;
        },
        () => {
          statuses.lost += 1;
        },
      );
    })();
    pending.add(post);
    void post.finally(() => pending.delete(post));
  },
  events: {
    onCrash: (service, code, signal) => {
      // Before traffic starts, times are from the run's start and named so.
      crashes.push({
        service,
        atMs: since(),
        exit: `${signal ?? code}${trafficStarted ? "" : ", during start-up"}`,
      });
      log(`${service} exited on its own (${signal ?? code}); starting it again`);
    },
  },
});

async function inject(p: Planned): Promise<void> {
  const event: FaultEvent = { fault: p.kind, startMs: since() };
  events.push(event);
  const window = async (begin: () => Promise<void> | void, end: () => Promise<void> | void) => {
    openWindows += 1;
    try {
      await begin();
      await new Promise((resolve) => setTimeout(resolve, p.forMs));
    } finally {
      await end();
      openWindows -= 1;
      event.endMs = since();
    }
  };
  switch (p.kind) {
    case "kill":
      event.target = p.service;
      system.kill(p.service);
      event.endMs = since();
      await system.waitReady(p.service, 120_000).then(
        () => {
          event.note = `ready again after ${((since() - event.startMs) / 1000).toFixed(1)} s`;
        },
        (err: Error) => {
          event.note = err.message;
        },
      );
      return;
    case "kafka":
      return window(
        () => system.kafka.stop(),
        () => system.kafka.start(),
      );
    case "mongo":
      return window(
        () => system.mongo.stop("server"),
        () => system.mongo.start(),
      );
    case "postgres":
      return window(
        () => system.mongo.stop("storage"),
        () => system.mongo.start(),
      );
    case "redis":
      return window(
        () => system.redis.stop(),
        () => system.redis.start(),
      );
    case "slow-acks":
      event.note = `${p.delayMs} ms per send`;
      return window(
        () => {
          system.graphProxy.delayMs = p.delayMs;
        },
        () => {
          system.graphProxy.delayMs = 0;
        },
      );
    case "images-slow":
      event.note = `${p.delayMs} ms per call`;
      return window(
        () => {
          system.imagesProxy.delayMs = p.delayMs;
        },
        () => {
          system.imagesProxy.delayMs = 0;
        },
      );
    case "images-fail":
      event.note = "500 to every call";
      return window(
        () => {
          system.openai.fallback = "server_error";
        },
        () => {
          system.openai.fallback = "ok";
        },
      );
    case "images-refuse":
      event.note = "connections dropped unanswered";
      return window(
        () => {
          system.imagesProxy.refuse = true;
        },
        () => {
          system.imagesProxy.refuse = false;
        },
      );
  }
}

const text = (body: string) => ({ type: "text", text: { body } });
const tap = (id: string) => ({
  type: "interactive",
  interactive: { type: "button_reply", button_reply: { id, title: id } },
});
const CREATING = /Creating your designs/;
const ADDRESS = ["Ana López", "Calle Mayor 1", "Madrid", "28013"];

interface OrderProblem {
  shopper: number;
  step: string;
  expected: string;
  got: string;
}
const orderProblems: OrderProblem[] = [];

/** Checks a reply is the one the journey expects next; a wrong one is an order violation and ends it. */
function expectReply(
  s: ChaosShopper,
  step: string,
  expected: string,
  read: Read | undefined,
  ok: (r: Read) => boolean,
) {
  if (read && ok(read)) return read;
  orderProblems.push({
    shopper: s.o.index,
    step,
    expected,
    got: read ? `${read.type}: ${read.text.slice(0, 80)}` : "nothing",
  });
  throw new StuckError(`expected ${expected} at ${step}`);
}

async function journey(s: ChaosShopper, pending: Set<Promise<unknown>>): Promise<void> {
  const say = async (step: string, part: Record<string, unknown>) => {
    await s.think();
    await s.send(step, part, APP_SECRET);
  };
  await say("hello", text("I want a gift"));
  expectReply(s, "hello", "a question", (await s.next("the first question"))[0], (r) => r.text.length > 0);
  await say("recipient", text("Rosa"));
  const themes = expectReply(s, "recipient", "the themes", (await s.next("the themes"))[0], (r) =>
    r.ids.some((id) => id.endsWith(":birthday")),
  );
  await say("theme", tap(themes.ids.find((id) => id.endsWith(":birthday")) ?? ""));
  const styles = expectReply(s, "theme", "the styles", (await s.next("the styles"))[0], (r) =>
    r.ids.some((id) => id.endsWith(":watercolor")),
  );
  await say("style", tap(styles.ids.find((id) => id.endsWith(":watercolor")) ?? ""));
  const confirm = expectReply(
    s,
    "style",
    "the confirmation",
    (await s.next("the confirmation"))[0],
    (r) => r.ids.length > 0,
  );
  await say("generate", tap(confirm.ids[0] ?? ""));
  const creating = expectReply(
    s,
    "generate",
    "Creating your designs",
    (await s.next("the round's start"))[0],
    (r) => CREATING.test(r.text),
  );
  // A round may fail under the faults (the provider down past its retries): the shopper is told and
  // taps "Try again", as a person would. Not a violation; counted in the report.
  let designs: Read[] = [];
  for (let attempt = 1; designs.length === 0; attempt += 1) {
    let [first] = await s.next("the designs, or word that they failed");
    if (first?.type === "image") {
      designs = [first, ...(await s.next("the other designs and their list", 3))];
      break;
    }
    const failed = first && /went wrong while creating your designs/.test(first.text);
    const unavailable = first && /cannot start new designs right now/.test(first.text);
    if (attempt > 5 || !first || !(failed || unavailable) || first.ids.length === 0)
      expectReply(s, "generate", "design 1, or a failed round", first, () => false);
    s.roundsRetried += 1;
    s.expectAgain(first as Read);
    s.expectAgain(creating);
    // A person reads the apology and tries again some seconds later, not at once.
    await new Promise((resolve) => setTimeout(resolve, 5_000 + s.o.choose() * 10_000));
    // Both apologies carry the "Try again" button (a new round's id); tap it.
    await say("retry", tap(first?.ids[0] ?? confirm.ids[0] ?? ""));
    [first] = await s.next("the round's start again");
    expectReply(s, "retry", "Creating your designs", first, (r) => CREATING.test(r.text));
  }
  designs.slice(0, 3).forEach((r, i) => {
    expectReply(s, "generate", `design ${i + 1}`, r, (x) => x.type === "image");
  });
  const list = expectReply(s, "generate", "the designs' list", designs[3], (r) =>
    r.ids.some((id) => id.startsWith("pick:")),
  );
  const picks = list.ids.filter((id) => id.startsWith("pick:"));
  await say("choose", tap(picks[Math.floor(s.o.choose() * picks.length)] ?? ""));
  const countries = expectReply(s, "choose", "the countries", (await s.next("the countries"))[0], (r) =>
    r.ids.some((id) => id.endsWith(":ES")),
  );
  await say("address", tap(countries.ids.find((id) => id.endsWith(":ES")) ?? ""));
  for (const answer of ADDRESS) {
    expectReply(
      s,
      "address",
      "an address question",
      (await s.next("an address question"))[0],
      (r) => r.type === "text",
    );
    await say("address", text(answer));
  }
  const check = expectReply(s, "address", "the address check", (await s.next("the address check"))[0], (r) =>
    /Please check where the gift goes/.test(r.text),
  );
  await say("confirm", tap(check.ids.find((id) => id.startsWith("addr:") && id.endsWith(":ok")) ?? ""));
  expectReply(s, "confirm", "Preparing your checkout", (await s.next("checkout preparing"))[0], (r) =>
    /Preparing your checkout/.test(r.text),
  );
  const cta = expectReply(s, "confirm", "the checkout link", (await s.next("the checkout link"))[0], (r) =>
    Boolean(r.url),
  );
  s.checkoutUrl = cta.url;
  await s.think();
  // The shopper's browser on the local checkout page presses Pay (a charge when answered 200), and
  // presses it again, as a person would, while the page answers with an error or not at all.
  const payBy = Date.now() + 90_000;
  for (;;) {
    const { paid, title } = await fetch(`${cta.url}/pay`, {
      method: "POST",
      signal: AbortSignal.timeout(30_000),
    }).then(
      async (r) => ({ paid: r.status, title: /<title>([^<]*)<\/title>/.exec(await r.text())?.[1] ?? "" }),
      () => ({ paid: 0, title: "" }),
    );
    s.payAnswers.push(paid);
    // What the page said: after a press whose answer was lost, "Paid" (409, the session closed)
    // is the provider telling that the lost one charged.
    s.payPages.push(title);
    if ((paid !== 0 && paid < 500) || Date.now() > payBy) break;
    await new Promise((resolve) => setTimeout(resolve, 2_000 + s.o.choose() * 3_000));
  }
  const done = expectReply(s, "pay", "Payment received", (await s.next("the paid confirmation"))[0], (r) =>
    /Payment received/.test(r.text),
  );
  s.orderNumber = /order number is ([0-9A-Z]{4}-[0-9A-Z]{4})/.exec(done.text)?.[1];
  if (faults.has("psp") && s.orderNumber) pspRedeliveries(s, pending);
}

/** The provider's "completed" webhook again: once at once, and maybe once later, as a provider retries. */
function pspRedeliveries(s: ChaosShopper, pending: Set<Promise<unknown>>): void {
  const provider = new LocalProvider({
    secret: PAYMENT_SECRET,
    publicUrl: system.paymentUrl,
    toleranceSeconds: 300,
  });
  const session = new URL(s.checkoutUrl ?? "").pathname.split("/").pop() ?? "";
  const delays = deliveryPlan(s.o.choose, lateMs).slice(1);
  for (const delay of delays) {
    const copy = (async () => {
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      const { body, signature } = provider.signedEvent("checkout.session.completed", {
        id: session,
        orderNumber: s.orderNumber ?? "",
      });
      for (let attempt = 0; attempt < 20; attempt += 1) {
        const status = await fetch(`${system.paymentUrl}/payments/webhooks/local`, {
          method: "POST",
          headers: { "content-type": "application/json", "taituri-signature": signature },
          body,
        }).then(
          (r) => r.status,
          () => 0,
        );
        pspDeliveries.push({ shopper: s.o.index, status, delayMs: delay });
        if (status === 200) return;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    })();
    pending.add(copy);
    void copy.finally(() => pending.delete(copy));
  }
}
const pspDeliveries: { shopper: number; status: number; delayMs: number }[] = [];

async function readDeadLetters(): Promise<RunRecord["deadLetters"]> {
  const kafka = createKafka({
    brokers: system.kafka.brokers,
    clientId: "chaos-dlq",
    logger: createLogger({ service: "chaos", level: "silent" }),
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const letters: RunRecord["deadLetters"] = [];
    for (const topic of Object.values(deadLetterTopics(system.prefix))) {
      if (!existing.has(topic)) continue;
      for (const { partition, message } of await readTopic(kafka, admin, topic, {
        groupPrefix: system.prefix,
      })) {
        const letter = readDeadLetter(topic, partition, message);
        letters.push({
          topic: topic.slice(system.prefix.length),
          reason: letter.reason,
          error: letter.error.slice(0, 200),
          key: pseudonym(letter.key),
          atMs: letter.at.getTime() - t0,
        });
      }
    }
    return letters;
  } finally {
    await admin.disconnect();
  }
}

async function main(): Promise<number> {
  const wall = Date.now();
  log(
    `starting: ${shoppers} shoppers over ${durationMs / 1000} s, seed ${seed}, faults ${[...faults].join(",") || "none"}`,
  );
  await system.start();
  log(`system ready in ${((Date.now() - wall) / 1000).toFixed(0)} s; logs in ${logDir}`);
  const plan = planFaults({ durationMs, faults, postgres: system.mongo.kind === "ferretdb", random });
  const mail = new Mailboxes(system.graph);
  const nonce = String(seed % 10_000).padStart(4, "0");
  const people: ChaosShopper[] = [];
  for (let i = 0; i < shoppers; i += 1) {
    // One in four known only by a BSUID, as shoppers who adopted a username are.
    const bsuid = random() < 0.25;
    // Each shopper draws from a PRNG of its own: the shared one would be drawn from in whatever
    // order the event loop runs the journeys, and a seed would no longer repeat a run's choices.
    const own = prng((seed * 1_000_003 + i) >>> 0);
    const id = `${nonce}${String(i).padStart(7, "0")}`;
    people.push(
      new ChaosShopper({
        index: i,
        ...(bsuid ? { userId: `US.7${id}` } : { waId: `349${id}` }),
        webhookUrl: () => `${system.ingressUrl}/webhook`,
        mail,
        deliveries: () => (faults.has("duplicates") ? deliveryPlan(own, lateMs) : [0]),
        thinkMs: () => Math.round((short ? 200 : 500) + own() * (short ? 800 : 2_500)),
        replyTimeoutMs,
        wamidPrefix: `chaos${run}`,
        choose: own,
        faultOpen: () => openWindows > 0,
        pending,
      }),
    );
  }
  t0 = Date.now();
  trafficStarted = true;
  const faultRuns = plan.map((p) =>
    new Promise<void>((resolve) => setTimeout(resolve, p.atMs)).then(() =>
      inject(p).catch((err: Error) => {
        events.push({ fault: p.kind, startMs: since(), note: `could not inject: ${err.message}` });
      }),
    ),
  );
  // Arrivals spread over the first 60 % of the run, at an even rate.
  const spread = (durationMs * 0.6) / shoppers;
  const journeys = people.map(async (s, i) => {
    await new Promise((resolve) => setTimeout(resolve, Math.round(i * spread)));
    try {
      await journey(s, pending);
    } catch (err) {
      const step = s.inbound.at(-1)?.step ?? "start";
      s.stuck = { step, waited: err instanceof Error ? err.message : String(err) };
      if (!(err instanceof StuckError)) log(`shopper ${i}: ${s.stuck.waited}`);
    }
  });
  let last = 0;
  const progress = setInterval(() => {
    const done = people.filter((p) => p.orderNumber || p.stuck).length;
    if (done !== last) log(`${done}/${shoppers} journeys ended, ${system.graph.sends().length} sends`);
    last = done;
  }, 10_000);
  await Promise.all([...journeys, ...faultRuns]);
  while (pending.size > 0) await Promise.all([...pending]);
  // Quiescence: no new send for 10 s (late copies' replies would show now), within 2 minutes.
  const quietBy = Date.now() + 120_000;
  for (let count = -1; count !== system.graph.requests.length && Date.now() < quietBy; ) {
    count = system.graph.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 10_000));
  }
  clearInterval(progress);
  const runMs = since();
  const deadLetters = await readDeadLetters().catch((err: Error) => {
    log(`reading the dead letters failed: ${err.message}`);
    return undefined;
  });
  const record: RunRecord = {
    shoppers: people.map((s) => ({
      index: s.o.index,
      id: pseudonym(s.recipient),
      recipient: s.recipient,
      bsuidOnly: s.bsuidOnly,
      inbound: s.inbound,
      seen: s.seen.length,
      mail: mail.of(s.recipient),
      stuck: s.stuck,
      paid: Boolean(s.orderNumber),
      orderNumber: s.orderNumber,
      payAnswers: s.payAnswers,
      payPages: s.payPages,
      deliveriesRefused: s.deliveriesRefused,
      roundsRetried: s.roundsRetried,
      again: s.again,
    })),
    imageCalls: system.openai.requests.map((r) => ({ round: String(r.body.user ?? ""), reply: r.reply })),
    kills: events
      .filter((e) => e.fault === "kill")
      .map((e) => ({ service: e.target ?? "", atMs: e.startMs })),
    crashes,
    orderProblems,
    deadLetters,
    pspDeliveries,
    statuses,
  };
  const checks: Check[] = checkInvariants(record, { recipientPseudonym: pseudonym });
  const violated = checks.filter((c) => c.violations > 0);
  const summary = {
    run,
    seed,
    short,
    startedAt: new Date(t0).toISOString(),
    wallSeconds: Math.round((Date.now() - wall) / 1000),
    runSeconds: Math.round(runMs / 1000),
    shoppers,
    bsuidOnly: people.filter((p) => p.bsuidOnly).length,
    journeysPaid: people.filter((p) => p.orderNumber).length,
    messagesIn: people.reduce((n, p) => n + p.inbound.length, 0),
    sends: system.graph.sends().length,
    imageCalls: system.openai.requests.length,
    mongo: system.mongo.kind,
    faults: events,
    crashes,
    checks,
    logDir,
    reliability: reliability(record, checks),
  };
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `chaos-${stamp}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(summary, null, 2)}\n`);
  writeFileSync(`${base}.md`, renderMarkdown(summary, record));
  log(`report: ${base}.md`);
  for (const c of checks)
    log(`${c.violations === 0 ? "ok  " : "FAIL"} ${c.name}: ${c.violations} of ${c.count}`);
  return violated.length > 0 ? 1 : 0;
}

// Ctrl-C: the services are our children and the servers our own; take them all down.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    log(`${signal}: stopping`);
    void system.stop().finally(() => process.exit(130));
  });

let code = 1;
try {
  code = await main();
} catch (err) {
  log(`the run broke: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  await system.stop().catch((err: Error) => log(`stopping: ${err.message}`));
}
process.exit(code);

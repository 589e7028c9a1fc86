import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chargesOf, checkInvariants, type RunRecord, type ShopperRecord } from "./check.ts";
import { deliveryPlan, FAULTS, planFaults, prng } from "./faults.ts";

const text = (t: string) => ({ type: "text", text: t, ids: [] });
const shopper = (over: Partial<ShopperRecord> = {}): ShopperRecord => ({
  index: 0,
  id: "p1",
  recipient: "34600000001",
  bsuidOnly: false,
  inbound: [{ wamid: "wamid.x.0.1", step: "hello", sentAt: 0, answeredAt: 5, duringFault: false }],
  seen: 2,
  mail: [
    { at: 5, read: text("Who is this gift for?") },
    { at: 9, read: text("Payment received, thank you!") },
  ],
  paid: true,
  orderNumber: "ABCD-EFGH",
  payAnswers: [200],
  deliveriesRefused: 0,
  roundsRetried: 0,
  again: {},
  ...over,
});
const record = (over: Partial<RunRecord> = {}): RunRecord => ({
  shoppers: [shopper()],
  imageCalls: [{ round: "r1", reply: "ok" }],
  kills: [],
  crashes: [],
  orderProblems: [],
  deadLetters: [],
  pspDeliveries: [],
  ...over,
});
const violations = (r: RunRecord) =>
  Object.fromEntries(
    checkInvariants(r, { recipientPseudonym: (id) => id }).map((c) => [c.name, c.violations]),
  );

describe("chaos invariants", () => {
  test("a clean record violates nothing", () => {
    assert.ok(Object.values(violations(record())).every((n) => n === 0));
  });

  test("a reply sent twice, an unanswered message and a second charge are each counted", () => {
    const bad = shopper({
      inbound: [{ wamid: "wamid.x.0.1", step: "hello", sentAt: 0, duringFault: true }],
      mail: [
        { at: 5, read: text("Payment received, thank you!") },
        { at: 6, read: text("Payment received, thank you!") },
      ],
      payAnswers: [200, 200],
    });
    const v = violations(record({ shoppers: [bad] }));
    assert.equal(v["no reply sent twice"], 1);
    assert.equal(v["every inbound message answered"], 1);
    // Charged twice; told twice is the reply sent twice above, not a charge.
    assert.equal(v["one charge per order"], 1);
  });

  test("a press whose answer was lost charged when a later one is told 'Paid'; not when told 'Checkout closed'", () => {
    const lost = (title: string) =>
      shopper({ payAnswers: [0, 0, 409], payPages: ["", "", title] }) as Parameters<typeof chargesOf>[0];
    assert.equal(chargesOf(lost("Paid")), 1);
    assert.equal(chargesOf(lost("Checkout closed")), 0);
    assert.equal(
      violations(record({ shoppers: [shopper({ payAnswers: [0, 409], payPages: ["", "Paid"] })] }))[
        "one charge per order"
      ],
      0,
    );
  });

  test("a charge the shopper was never told of is a violation of the order", () => {
    const silent = shopper({ mail: [{ at: 5, read: text("Here is your checkout") }], payAnswers: [200] });
    assert.equal(violations(record({ shoppers: [silent] }))["one charge per order"], 1);
  });

  test("a reply the shopper asked for again ('Try again') is not a duplicate; a third copy is", () => {
    const sorry = text("Sorry, something went wrong while creating your designs. Try again?");
    const key = JSON.stringify(["34600000001", sorry.type, sorry.text, sorry.ids, ""]);
    const mail = (n: number) => Array.from({ length: n }, (_, i) => ({ at: i, read: sorry }));
    const v = (n: number) =>
      violations(record({ shoppers: [shopper({ mail: mail(n), again: { [key]: 1 } })] }));
    assert.equal(v(2)["no reply sent twice"], 0);
    assert.equal(v(3)["no reply sent twice"], 1);
  });

  test("a second answered image call is a violation unless generation was killed", () => {
    const calls = [
      { round: "r1", reply: "ok" },
      { round: "r1", reply: "server_error" },
      { round: "r1", reply: "ok" },
    ];
    const name = "one answered image call per round (two only after a generation kill)";
    assert.equal(violations(record({ imageCalls: calls }))[name], 1);
    assert.equal(
      violations(record({ imageCalls: calls, kills: [{ service: "generation", atMs: 1 }] }))[name],
      0,
    );
  });

  test("a conversation whose last reply is 'Creating your designs' is left generating", () => {
    const s = shopper({ mail: [{ at: 1, read: text("Creating your designs…") }], paid: false });
    assert.equal(
      violations(record({ shoppers: [s] }))["no conversation left generating past the watchdog"],
      1,
    );
  });

  test("dead letters, unreadable dead-letter topics and crashes are violations", () => {
    const letter = { topic: "inbound.v1.dlq", reason: "unknown", error: "x", key: "k", atMs: 1 };
    assert.equal(violations(record({ deadLetters: [letter] }))["every dead letter accounted for"], 1);
    assert.equal(violations(record({ deadLetters: undefined }))["every dead letter accounted for"], 1);
    const crash = { service: "payment", atMs: 1, exit: "1" };
    assert.equal(violations(record({ crashes: [crash] }))["no service exits on its own"], 1);
  });
});

describe("chaos schedule", () => {
  test("the same seed draws the same schedule; outages never overlap", () => {
    const plan = (seed: number) =>
      planFaults({ durationMs: 90_000, faults: new Set(FAULTS), postgres: true, random: prng(seed) });
    assert.deepEqual(plan(3), plan(3));
    assert.notDeepEqual(plan(3), plan(4));
    const outages = plan(3)
      .filter((p) => ["kafka", "mongo", "postgres", "redis"].includes(p.kind))
      .sort((a, b) => a.atMs - b.atMs);
    assert.equal(outages.length, 4);
    for (let i = 1; i < outages.length; i += 1) {
      const before = outages[i - 1];
      assert.ok(before && (outages[i]?.atMs ?? 0) >= before.atMs + before.forMs);
    }
    assert.equal(plan(3).filter((p) => p.kind === "kill").length, 10);
  });

  test("each webhook goes 2 or 3 times, the first at once", () => {
    const random = prng(9);
    for (let i = 0; i < 200; i += 1) {
      const d = deliveryPlan(random, [10_000, 30_000]);
      assert.ok(d.length === 2 || d.length === 3);
      assert.equal(d[0], 0);
      assert.ok(d.every((ms) => ms >= 0 && ms <= 30_000));
    }
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { context, countries, offered, pickupShop, sent, shop, spainShop } from "../testing/fixtures.ts";
import type { Shop } from "./catalog.ts";
import {
  type Conversation,
  DELIVERY_LIMITS,
  DELIVERY_STATES,
  type Delivery,
  type Event,
  initialConversation,
  parseReplyId,
  replyId,
  roundIdOf,
  transition,
} from "./machine.ts";

/**
 * Random shoppers and a random, unreliable world: any sequence of messages (typed, tapped on any
 * button ever shown — stale ones included — voice notes), downstream results for any round or order
 * ever requested, duplicated and out of order, and long silences. Whatever happens:
 *  - at most one generation request is open per conversation;
 *  - every payment request is a new order, and only the open order is ever cancelled;
 *  - a successful payment is never ignored, unless it restates the payment of the paid order;
 *  - every payment request sends the gift somewhere complete and valid for the shop, for the
 *    conversation's recipient, and the delivery draft never outlives a restart;
 *  - the machine never throws, and every state has a way forward (help and restart answer).
 */
type Step =
  | { kind: "say"; text: string; gapMs: number }
  /** Words that fit the question being asked, or nearly (a shopper who reads it). */
  | { kind: "answer"; pick: number }
  | { kind: "tapOffered"; pick: number; gapMs: number }
  | { kind: "tapStale"; pick: number }
  | { kind: "media" }
  | { kind: "generation"; outcome: "completed" | "failed" | "rejected" | "deadline"; pick: number }
  | { kind: "payment"; outcome: "link" | "succeeded" | "failed" | "expired" | "shipped"; pick: number };

const words = [
  "hi",
  "Rosa",
  "birthday",
  "love",
  "watercolor",
  "retro",
  "generate",
  "1",
  "2",
  "3",
  "more",
  "continue",
  "restart",
  "cancel",
  "help",
  "blue",
  "yes",
  "change",
];
// Answers to each question, by state or by the delivery field asked, right and wrong.
const answers: Record<string, string[]> = {
  awaiting_recipient: ["Rosa", ""],
  awaiting_theme: ["birthday", "purple"],
  awaiting_style: ["retro", "watercolor"],
  ready: ["generate"],
  choosing: ["1", "3", "more"],
  awaiting_delivery_method: ["send it", "pick it up", "by pigeon"],
  confirming_delivery: ["yes", "change", "hmm"],
  changing_delivery: ["postcode", "country", "name", "nothing", "everything"],
  resuming: ["continue"],
  country: ["Spain", "UK", "france", "Atlantis", "Mexico"],
  name: ["Ana López", "Leo", "A"],
  street: ["Calle Mayor 1\n3º B", "10 Downing St", "a\nb\nc"],
  city: ["Madrid", "London", "x".repeat(61)],
  postcode: ["28013", "sw1a1aa", "75001", "1234"],
  location: ["Madrid centre", "lisboa baixa", "Paris"],
};
// Mostly the latest round or order (what a live system sees), sometimes an older one (late, replayed).
const recent = fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.nat(10), weight: 1 });
const gap = fc.oneof(
  { arbitrary: fc.constant(1_000), weight: 8 },
  { arbitrary: fc.constant(3 * 3600_000), weight: 1 },
);
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({ kind: fc.constant("say" as const), text: fc.constantFrom(...words), gapMs: gap }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant("answer" as const), pick: fc.nat(20) }), weight: 3 },
  {
    arbitrary: fc.record({ kind: fc.constant("tapOffered" as const), pick: fc.nat(20), gapMs: gap }),
    weight: 6,
  },
  { arbitrary: fc.record({ kind: fc.constant("tapStale" as const), pick: fc.nat(50) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("media" as const) }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant("generation" as const),
      outcome: fc.constantFrom("completed", "completed", "failed", "rejected", "deadline"),
      pick: recent,
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("payment" as const),
      outcome: fc.constantFrom("link", "succeeded", "failed", "expired", "shipped"),
      pick: recent,
    }),
    weight: 3,
  },
);

/** Whether a delivery is complete and one the shop can send to, checked apart from the machine's own code. */
function deliverable(shop: Shop, d: Delivery): boolean {
  const fits = (value: string, min: number, max: number) =>
    value === value.trim() && [...value].length >= min && [...value].length <= max;
  if (d.method === "pickup")
    return (
      (shop.delivery.pickup ?? []).some((p) => p.id === d.locationId) &&
      fits(d.name, DELIVERY_LIMITS.nameMin, DELIVERY_LIMITS.nameMax)
    );
  const country = countries[d.country];
  return (
    country !== undefined &&
    shop.delivery.countries.includes(d.country) &&
    fits(d.name, DELIVERY_LIMITS.nameMin, DELIVERY_LIMITS.nameMax) &&
    fits(d.line1, 1, DELIVERY_LIMITS.line) &&
    (d.line2 === undefined || fits(d.line2, 1, DELIVERY_LIMITS.line)) &&
    fits(d.city, 1, DELIVERY_LIMITS.city) &&
    country.postcode.test(d.postcode) &&
    d.postcode === d.postcode.toUpperCase()
  );
}

// The shipped shop (no pickup, eight countries), one with pickup points, one shipping to Spain alone.
const shops = fc.constantFrom(shop, pickupShop, spainShop);

test("no sequence of events opens two generations or pays one order twice, or leaves the shopper stuck", () => {
  fc.assert(
    fc.property(shops, fc.array(step, { minLength: 5, maxLength: 80, size: "max" }), (shop, steps) => {
      let now = 1_000_000;
      let c: Conversation = initialConversation(shop);
      const everOffered: string[] = [];
      let current: string[] = [];
      const rounds: string[] = [];
      const orders: string[] = [];
      let openGeneration: string | undefined;

      for (const s of steps) {
        let event: Event;
        switch (s.kind) {
          case "say":
            now += s.gapMs;
            event = {
              type: "message",
              messageId: `m${now}`,
              at: now,
              shopperName: "Ana",
              input: { kind: "text", text: s.text },
            };
            break;
          case "answer": {
            now += 1_000;
            const pool = answers[c.asking ?? ""] ?? answers[c.state] ?? words;
            const text = pool?.[s.pick % pool.length] ?? "";
            event = {
              type: "message",
              messageId: `m${now}`,
              at: now,
              shopperName: "Ana",
              input: { kind: "text", text },
            };
            break;
          }
          case "tapOffered":
          case "tapStale": {
            if (s.kind === "tapOffered") now += s.gapMs;
            const pool = s.kind === "tapOffered" ? current : everOffered;
            const id = pool.length > 0 ? (pool[s.pick % pool.length] as string) : "bogus";
            event = {
              type: "message",
              messageId: `m${now}`,
              at: now,
              shopperName: "Ana",
              input: { kind: "reply", id, title: "" },
            };
            break;
          }
          case "media":
            event = {
              type: "message",
              messageId: `m${now}`,
              at: now,
              shopperName: "Ana",
              input: { kind: "media", media: "voice" },
            };
            break;
          case "generation": {
            const roundId =
              rounds.length > 0 ? (rounds[rounds.length - 1 - (s.pick % rounds.length)] as string) : "none";
            event =
              s.outcome === "completed"
                ? {
                    type: "generation_completed",
                    roundId,
                    designs: [1, 2, 3].map((i) => ({ id: `d${i}`, imageId: `${roundId}/${i}` })),
                  }
                : s.outcome === "failed"
                  ? { type: "generation_failed", roundId, reason: "x" }
                  : s.outcome === "rejected"
                    ? { type: "generation_rejected", roundId, retryAfterMs: 60_000 }
                    : { type: "generation_deadline", roundId };
            break;
          }
          case "payment": {
            const orderId =
              orders.length > 0 ? (orders[orders.length - 1 - (s.pick % orders.length)] as string) : "none";
            const orderNumber = `N${orders.indexOf(orderId)}`;
            event =
              s.outcome === "link"
                ? { type: "payment_link", orderId, orderNumber, url: `https://pay/${orderId}` }
                : s.outcome === "succeeded"
                  ? { type: "payment_succeeded", orderId, orderNumber }
                  : s.outcome === "failed"
                    ? { type: "payment_failed", orderId, orderNumber, reason: "x" }
                    : s.outcome === "shipped"
                      ? {
                          type: "payment_shipped",
                          orderId,
                          orderNumber,
                          trackingUrl: `https://track/${orderId}`,
                        }
                      : { type: "payment_expired", orderId, orderNumber };
            break;
          }
        }
        const ctx = context({ now, shop });
        const before = c;
        const result = transition(c, event, ctx);
        c = result.conversation;

        const generations = result.effects.filter((e) => e.type === "request_generation");
        assert.ok(generations.length <= 1);
        for (const g of generations) {
          assert.equal(
            openGeneration,
            undefined,
            `a second generation (${g.roundId}) while ${openGeneration} is open`,
          );
          assert.notEqual(before.state, "generating");
          rounds.push(g.roundId);
        }
        // A round is open while the conversation is generating it.
        openGeneration = c.state === "generating" ? roundIdOf(ctx, c) : undefined;
        if (generations[0]) assert.equal(openGeneration, generations[0].roundId);

        for (const cancel of result.effects.filter((e) => e.type === "cancel_order")) {
          assert.equal(cancel.orderId, before.order?.id, "only the open order is cancelled");
          assert.equal(before.state, "awaiting_payment");
        }
        for (const p of result.effects.filter((e) => e.type === "request_payment")) {
          assert.ok(!orders.includes(p.orderId), `a second payment request for ${p.orderId}`);
          orders.push(p.orderId);
          assert.equal(p.amount, shop.product.price, "the catalog's price");
          assert.ok(deliverable(shop, p.delivery), `an incomplete delivery: ${JSON.stringify(p.delivery)}`);
          assert.equal(p.recipient, before.recipient);
          assert.ok(p.recipient, "for someone");
          assert.ok(c.designs.some((d) => d.id === p.designId));
        }
        // The delivery steps always know which design they are for, and what they ask.
        if (DELIVERY_STATES.has(c.state))
          assert.ok(
            c.designs.some((d) => d.id === c.chosenDesignId),
            `${c.state} without a design`,
          );
        if (c.state === "awaiting_address" || c.state === "awaiting_pickup") assert.ok(c.asking);
        // What WhatsApp accepts (services/ingress/src/outbound/payload.ts, LIMITS): at most three
        // buttons titled in 20 characters; at most ten rows titled in 24, a list button in 20.
        for (const m of sent(result.effects)) {
          if (m.kind === "buttons") {
            assert.ok(m.buttons.length <= 3);
            for (const b of m.buttons) assert.ok(b.title.length <= 20, b.title);
          }
          if (m.kind === "list") {
            assert.ok(m.button.length <= 20 && m.rows.length <= 10, m.button);
            for (const r of m.rows)
              assert.ok(r.title.length <= 24 && (r.description ?? "").length <= 72, r.title);
          }
        }
        if (event.type === "payment_succeeded" && orders.includes(event.orderId)) {
          const restated = before.state === "paid" && before.order?.id === event.orderId;
          assert.ok(restated || result.outcome !== "ignored", `payment of ${event.orderId} ignored`);
          assert.ok(result.effects.some((e) => e.type === "send") || restated);
        }

        const shown = offered(result.effects);
        if (shown.length > 0) current = shown;
        everOffered.push(...shown);
        for (const id of shown) assert.ok(parseReplyId(id), `reply id ${id} parses`);
      }

      // A way forward from wherever it ended.
      const ctx = context({ now: now + 1 });
      const help = transition(
        c,
        {
          type: "message",
          messageId: "h",
          at: now + 1,
          shopperName: "",
          input: { kind: "text", text: "help" },
        },
        ctx,
      );
      assert.ok(help.effects.length > 0);
      const restart = transition(
        c,
        {
          type: "message",
          messageId: "r",
          at: now + 1,
          shopperName: "",
          input: { kind: "text", text: "restart" },
        },
        ctx,
      );
      assert.equal(restart.conversation.state, "awaiting_recipient");
      assert.equal(restart.conversation.delivery, undefined, "the draft is personal data");
      assert.equal(replyId("theme", restart.conversation, "x"), `theme:j${c.journey + 1}:x`);
    }),
    { numRuns: 1000 },
  );
});

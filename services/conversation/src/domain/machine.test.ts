import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  catalog,
  context,
  message,
  messages,
  offered,
  pickupShop,
  said,
  shop,
  spainShop,
  tap,
  text,
} from "../testing/fixtures.ts";
import { matchOption, normalize, shopFor } from "./catalog.ts";
import {
  type Context,
  type Conversation,
  DELIVERY_STATES,
  type Event,
  funnelStep,
  initialConversation,
  nextOrderIdOf,
  PAYMENT_TABLE,
  type PaymentEvent,
  parseReplyId,
  replyId,
  roundIdOf,
  STATES,
  type State,
  transition,
} from "./machine.ts";
import { commandOf, render } from "./messages.ts";

const ctx = context();
/** The shipped shop with two pickup points: its journeys ask how the gift should travel. */
const pctx = context({ shop: pickupShop });
const start = initialConversation(shop);

/** Runs events in order from a conversation, returning the last result and every effect. */
function runIn(c: Context, from: Conversation, ...events: Event[]) {
  let conversation = from;
  const all = [];
  let last = transition(conversation, events[0] as Event, c);
  for (const event of events) {
    last = transition(conversation, event, c);
    conversation = last.conversation;
    all.push(...last.effects);
  }
  return { ...last, all };
}
const run = (from: Conversation, ...events: Event[]) => runIn(ctx, from, ...events);

/** An address in Spain, answered field by field from the country question on. */
const SPAIN = [
  tap("country:j1:ES"),
  text("Ana López"),
  text("Calle Mayor 1\n3º B"),
  text("Madrid"),
  text("28013"),
];

/** States only a shop with pickup points reaches: their conversations are the pickup shop's. */
const ctxFor = (state: State) =>
  state === "awaiting_delivery_method" || state === "awaiting_pickup" ? pctx : ctx;

/** A conversation walked to `state` the way a shopper would get there. */
function at(state: State): Conversation {
  const named = run(start, text("hi"), text("Rosa")).conversation;
  const themed = run(named, tap(replyId("theme", named, "birthday"))).conversation;
  const ready = run(themed, tap(replyId("style", themed, "watercolor"))).conversation;
  const generating = run(ready, tap(replyId("gen", ready, "go", 1))).conversation;
  const roundId = roundIdOf(ctx, generating);
  const designs = [1, 2, 3].map((i) => ({ id: `d${i}`, imageId: `${roundId}/img${i}` }));
  const choosing = transition(
    generating,
    { type: "generation_completed", roundId, designs },
    ctx,
  ).conversation;
  const addressing = run(choosing, tap(replyId("pick", choosing, "d2", 1))).conversation;
  const confirming = run(addressing, ...SPAIN).conversation;
  const paying = run(confirming, tap("addr:j1:ok")).conversation;
  const method = runIn(pctx, choosing, tap("pick:j1.r1:d2")).conversation;
  const linked = transition(
    paying,
    {
      type: "payment_link",
      orderId: paying.order?.id ?? "",
      orderNumber: "7KQ2-M9XD",
      url: "https://pay.local/o/1",
    },
    ctx,
  ).conversation;
  const paid = transition(
    linked,
    { type: "payment_succeeded", orderId: linked.order?.id ?? "", orderNumber: "7KQ2-M9XD" },
    ctx,
  ).conversation;
  const table: Record<State, Conversation> = {
    new: start,
    awaiting_recipient: run(start, text("hi")).conversation,
    awaiting_theme: named,
    awaiting_style: themed,
    ready,
    generating,
    choosing,
    awaiting_delivery_method: method,
    awaiting_address: addressing,
    awaiting_pickup: runIn(pctx, method, tap("delivery:j1:pickup")).conversation,
    confirming_delivery: confirming,
    changing_delivery: run(confirming, tap("addr:j1:change")).conversation,
    awaiting_payment: linked,
    paid,
    resuming: run(named, text("back", 1_000_000 + ctx.sessionTtlMs + 1)).conversation,
    cancelled: run(named, text("cancel")).conversation,
  };
  assert.equal(table[state].state, state);
  return table[state];
}

describe("the happy path", () => {
  test("greet → name → theme → style → generate → choose → pay → paid", () => {
    const greeted = transition(start, text("I want a gift"), ctx);
    assert.equal(greeted.conversation.state, "awaiting_recipient");
    assert.match(said(greeted.effects), /^Hi Ana! 🎁 .*Who is this gift for\?/);

    const named = transition(greeted.conversation, text("  Grandma   Rosa "), ctx);
    assert.equal(named.conversation.recipient, "Grandma Rosa");
    assert.match(
      said(named.effects),
      /A gift for Grandma Rosa.*\{Birthday\|Love\|Thank you\|Congratulations\}/,
    );
    assert.deepEqual(offered(named.effects).slice(0, 1), ["theme:j1:birthday"]);

    const themed = transition(named.conversation, text("bday"), ctx);
    assert.equal(themed.conversation.theme, "birthday");
    const styled = transition(themed.conversation, tap("style:j1:watercolor"), ctx);
    assert.equal(styled.conversation.state, "ready");
    assert.match(
      said(styled.effects),
      /A Birthday design in Watercolor style for Grandma Rosa, printed on a ceramic mug/,
    );
    assert.deepEqual(offered(styled.effects), ["gen:j1.r1:go"]);

    const generating = transition(styled.conversation, tap("gen:j1.r1:go"), ctx);
    assert.equal(generating.conversation.state, "generating");
    const request = generating.effects.find((e) => e.type === "request_generation");
    assert.deepEqual(request, {
      type: "request_generation",
      roundId: "PN:555/j1/r1",
      recipient: "Grandma Rosa",
      theme: "birthday",
      style: "watercolor",
      productId: "mug-11oz",
      count: 3,
    });
    assert.deepEqual(
      generating.effects.find((e) => e.type === "schedule_timer"),
      {
        type: "schedule_timer",
        timerId: "deadline:PN:555/j1/r1",
        roundId: "PN:555/j1/r1",
        at: ctx.now + 90_000,
      },
    );

    const designs = [1, 2, 3].map((i) => ({ id: `d${i}`, imageId: `img${i}` }));
    const shown = transition(
      generating.conversation,
      { type: "generation_completed", roundId: "PN:555/j1/r1", designs },
      ctx,
    );
    assert.equal(shown.conversation.state, "choosing");
    assert.match(
      said(shown.effects),
      /<image img1: Design 1>\n<image img2: Design 2>\n<image img3: Design 3>\nWhich one/,
    );
    assert.deepEqual(offered(shown.effects), [
      "pick:j1.r1:d1",
      "pick:j1.r1:d2",
      "pick:j1.r1:d3",
      "more:j1.r1:more",
    ]);
    assert.ok(shown.effects.some((e) => e.type === "cancel_timer" && e.timerId === "deadline:PN:555/j1/r1"));

    const picked = transition(shown.conversation, text("2"), ctx);
    assert.equal(picked.conversation.state, "awaiting_address");
    assert.ok(
      !picked.effects.some((e) => e.type === "request_payment"),
      "not before the delivery is confirmed",
    );
    const addressed = run(picked.conversation, ...SPAIN);
    assert.equal(addressed.conversation.state, "confirming_delivery");
    const chosen = transition(addressed.conversation, tap("addr:j1:ok"), ctx);
    assert.deepEqual(
      chosen.effects.find((e) => e.type === "request_payment"),
      {
        type: "request_payment",
        orderId: "PN:555/o1",
        designId: "d2",
        imageId: "img2",
        productId: "mug-11oz",
        amount: 1990,
        currency: "EUR",
        recipient: "Grandma Rosa",
        delivery: {
          method: "address",
          name: "Ana López",
          line1: "Calle Mayor 1",
          line2: "3º B",
          city: "Madrid",
          postcode: "28013",
          country: "ES",
        },
      },
    );
    assert.match(said(chosen.effects), /Preparing your checkout/);
    const linked = transition(
      chosen.conversation,
      { type: "payment_link", orderId: "PN:555/o1", orderNumber: "7KQ2-M9XD", url: "https://pay.local/o/1" },
      ctx,
    );
    assert.match(
      said(linked.effects),
      /Your ceramic mug with design 2: €19\.90\. Tap to pay securely\. \(Pay https:\/\/pay\.local\/o\/1\)/,
    );
    const paid = transition(
      linked.conversation,
      { type: "payment_succeeded", orderId: "PN:555/o1", orderNumber: "7KQ2-M9XD" },
      ctx,
    );
    assert.equal(paid.conversation.state, "paid");
    assert.match(said(paid.effects), /Your order number is 7KQ2-M9XD\./);
  });

  test("a Spanish shop speaks Spanish and understands Spanish options", () => {
    const es = { ...shop, language: "es" };
    const c = context({ shop: es });
    const greeted = transition(initialConversation(es), text("hola"), c);
    assert.match(said(greeted.effects), /^¡Hola Ana!/);
    const named = transition(greeted.conversation, text("Rosa"), c);
    const themed = transition(named.conversation, text("¡Cumpleaños!"), c);
    assert.equal(themed.conversation.theme, "birthday");
    assert.match(said(themed.effects), /Cumpleaños, perfecto/);
  });
});

describe("off-script input re-prompts and does not advance", () => {
  const cases: [State, Event][] = [
    ["awaiting_recipient", message({ kind: "media", media: "voice" })],
    ["awaiting_recipient", message({ kind: "other", type: "sticker" })],
    ["awaiting_theme", text("something else")],
    ["awaiting_theme", message({ kind: "media", media: "image" })],
    ["awaiting_style", text("purple")],
    ["ready", text("hmm")],
    ["choosing", text("the blue one")],
    ["choosing", text("7")],
    ["resuming", message({ kind: "media", media: "voice" })],
    ["awaiting_delivery_method", text("by pigeon")],
    ["awaiting_delivery_method", message({ kind: "media", media: "voice" })],
    ["awaiting_address", text("Atlantis")],
    ["awaiting_address", message({ kind: "media", media: "voice" })],
    ["awaiting_address", message({ kind: "other", type: "location" })],
    ["awaiting_pickup", text("the one by the sea")],
    ["awaiting_pickup", message({ kind: "media", media: "sticker" })],
    ["confirming_delivery", text("hmm")],
    ["confirming_delivery", message({ kind: "media", media: "image" })],
    ["changing_delivery", text("everything")],
    ["changing_delivery", message({ kind: "other", type: "location" })],
  ];
  for (const [state, event] of cases) {
    test(`${state} + ${event.type === "message" ? event.input.kind : event.type}`, () => {
      const from = at(state);
      const result = transition(from, event, ctxFor(state));
      assert.equal(result.outcome, "reprompted");
      assert.equal(result.conversation.state, state);
      assert.equal(result.conversation.asking, from.asking);
      assert.ok(
        result.effects.some((e) => e.type === "send"),
        "the shopper is asked again",
      );
      assert.ok(!result.effects.some((e) => e.type === "request_generation" || e.type === "request_payment"));
      if (event.type === "message" && event.input.kind !== "text")
        assert.match(said(result.effects), /only read text and buttons/);
    });
  }
});

describe("generation", () => {
  test('"generate" twice, or anything while generating: one request, and the shopper is told it is on its way', () => {
    const ready = at("ready");
    const first = transition(ready, tap("gen:j1.r1:go"), ctx);
    const again = transition(first.conversation, tap("gen:j1.r1:go"), ctx);
    const typed = transition(again.conversation, text("generate"), ctx);
    const voice = transition(typed.conversation, message({ kind: "media", media: "voice" }), ctx);
    for (const r of [again, typed, voice]) {
      assert.equal(r.conversation.state, "generating");
      assert.ok(!r.effects.some((e) => e.type === "request_generation"));
      assert.match(said(r.effects), /on their way/);
    }
  });

  for (const [reason, says] of [
    [
      "content_policy: declined under the provider's content rules",
      /declined.*content rules.*Try a different name, theme or style/,
    ],
    [
      "limiter_unavailable: cannot start designs now",
      /cannot start new designs right now.*Nothing was charged/,
    ],
  ] as const) {
    test(`a round failed with ${reason.split(":")[0]} tells the shopper what they can do, and offers a retry`, () => {
      const failed = transition(
        at("generating"),
        { type: "generation_failed", roundId: "PN:555/j1/r1", reason },
        ctx,
      );
      assert.equal(failed.conversation.state, "ready");
      assert.match(said(failed.effects), says);
      assert.deepEqual(offered(failed.effects), ["gen:j1.r2:go"]);
    });
  }

  for (const failure of [
    { type: "generation_failed", roundId: "PN:555/j1/r1", reason: "provider 500" },
    { type: "generation_deadline", roundId: "PN:555/j1/r1" },
  ] as Event[]) {
    test(`${failure.type}: back to the safe state with an apology and a retry button; a late result is ignored`, () => {
      const failed = transition(at("generating"), failure, ctx);
      assert.equal(failed.conversation.state, "ready");
      assert.match(said(failed.effects), /something went wrong.*Nothing was charged/);
      assert.deepEqual(offered(failed.effects), ["gen:j1.r2:go"]);
      const late = transition(
        failed.conversation,
        { type: "generation_completed", roundId: "PN:555/j1/r1", designs: [{ id: "d1", imageId: "x" }] },
        ctx,
      );
      assert.equal(late.outcome, "ignored");
      assert.equal(late.conversation, failed.conversation);
      const retried = transition(failed.conversation, tap("gen:j1.r2:go"), ctx);
      assert.equal(
        (retried.effects.find((e) => e.type === "request_generation") as { roundId: string }).roundId,
        "PN:555/j1/r2",
      );
    });
  }

  test("the limiter says no: a friendly message saying when, and no request", () => {
    const rejected = transition(
      at("generating"),
      { type: "generation_rejected", roundId: "PN:555/j1/r1", retryAfterMs: 25 * 60_000 },
      ctx,
    );
    assert.equal(rejected.conversation.state, "ready");
    assert.match(said(rejected.effects), /try again in 25 minutes/);
    assert.ok(!rejected.effects.some((e) => e.type === "request_generation"));
  });

  test("more designs start a new round, up to the shop's limit", () => {
    let c = at("choosing");
    for (let round = 2; round <= shop.maxRounds; round++) {
      const more = transition(c, tap(`more:j1.r${round - 1}:more`), ctx);
      assert.equal(more.conversation.state, "generating");
      const roundId = roundIdOf(ctx, more.conversation);
      assert.equal(roundId, `PN:555/j1/r${round}`);
      c = transition(
        more.conversation,
        { type: "generation_completed", roundId, designs: [{ id: "d1", imageId: `i${round}` }] },
        ctx,
      ).conversation;
    }
    assert.ok(!offered(transition(c, text("hmm"), ctx).effects).some((id) => id.startsWith("more:")));
    const refused = transition(c, text("more"), ctx);
    assert.match(said(refused.effects), /all the designs I can make/);
    assert.equal(refused.conversation.state, "choosing");
  });
});

describe("buying", () => {
  test('"buy" twice: one order, one payment request, the same link again', () => {
    const linked = at("awaiting_payment");
    const again = transition(linked, tap("pick:j1.r1:d2"), ctx);
    assert.equal(again.conversation.state, "awaiting_payment");
    assert.ok(!again.effects.some((e) => e.type === "request_payment"));
    assert.match(said(again.effects), /Pay https:\/\/pay\.local\/o\/1/);
    const sameLink = transition(
      linked,
      {
        type: "payment_link",
        orderId: linked.order?.id ?? "",
        orderNumber: "7KQ2-M9XD",
        url: "https://pay.local/o/1",
      },
      ctx,
    );
    assert.equal(sameLink.outcome, "ignored");
  });

  test("paid twice: one confirmation", () => {
    const paid = at("paid");
    const twice = transition(
      paid,
      { type: "payment_succeeded", orderId: paid.order?.id ?? "", orderNumber: "7KQ2-M9XD" },
      ctx,
    );
    assert.equal(twice.outcome, "ignored");
    assert.deepEqual(twice.effects, []);
  });

  test("an expired or failed payment goes back to choosing; choosing again is a new order", () => {
    for (const type of ["payment_expired", "payment_failed"] as const) {
      const linked = at("awaiting_payment");
      const back = transition(
        linked,
        { type, orderId: linked.order?.id ?? "", orderNumber: "7KQ2-M9XD", reason: "declined" } as Event,
        ctx,
      );
      assert.equal(back.conversation.state, "choosing");
      // Where the gift goes is known: shown for confirmation, not asked again.
      const picked = transition(back.conversation, tap("pick:j1.r1:d2"), ctx);
      assert.equal(picked.conversation.state, "confirming_delivery");
      assert.match(said(picked.effects), /Ana López\nCalle Mayor 1\n3º B\n28013 Madrid\nSpain/);
      const again = transition(picked.conversation, tap("addr:j1:ok"), ctx);
      assert.equal(
        (again.effects.find((e) => e.type === "request_payment") as { orderId: string }).orderId,
        "PN:555/o2",
      );
    }
  });

  test("a payment for another order is confirmed, never ignored; the journey stays where it is", () => {
    const r = transition(
      at("awaiting_payment"),
      { type: "payment_succeeded", orderId: "PN:555/o9", orderNumber: "ZZZZ-0001" },
      ctx,
    );
    assert.equal(r.outcome, "notified");
    assert.equal(r.conversation.state, "awaiting_payment");
    assert.match(said(r.effects), /Payment received for order ZZZZ-0001/);
  });
});

describe("stale taps, the session TTL and global commands", () => {
  test("a tap on a button of an older message is recognised and not applied", () => {
    const styled = at("awaiting_style");
    const oldTheme = transition(styled, tap("theme:j1:love"), ctx);
    assert.equal(oldTheme.outcome, "stale");
    assert.equal(oldTheme.conversation.theme, "birthday");
    assert.match(said(oldTheme.effects), /earlier message/);
    const choosing = at("choosing");
    const more = transition(choosing, tap("more:j1.r1:more"), ctx);
    const c2 = transition(
      more.conversation,
      { type: "generation_completed", roundId: "PN:555/j1/r2", designs: [{ id: "d1", imageId: "n" }] },
      ctx,
    );
    assert.equal(transition(c2.conversation, tap("pick:j1.r1:d1"), ctx).outcome, "stale");
    assert.equal(transition(at("choosing"), tap("pick:j0.r1:d1"), ctx).outcome, "stale");
  });

  test("back after the session TTL: continue or start over", () => {
    const theme = at("awaiting_theme");
    const later = 1_000_000 + ctx.sessionTtlMs + 60_000;
    const back = transition(theme, text("Love", later), ctx);
    assert.equal(back.conversation.state, "resuming");
    assert.deepEqual(offered(back.effects), ["resume:j1:continue", "resume:j1:restart"]);
    const continued = transition(back.conversation, tap("resume:j1:continue", later + 1), ctx);
    assert.equal(continued.conversation.state, "awaiting_theme");
    const restarted = transition(back.conversation, tap("resume:j1:restart", later + 1), ctx);
    assert.equal(restarted.conversation.state, "awaiting_recipient");
    assert.equal(restarted.conversation.journey, 2);
    assert.equal(restarted.conversation.recipient, undefined);
  });

  test("restart, cancel and help work in every state", () => {
    for (const state of STATES) {
      const from = at(state);
      const ctx = ctxFor(state);
      const help = transition(from, text("help"), ctx);
      assert.equal(help.outcome, "command", state);
      assert.equal(help.conversation.state, from.state === "new" ? "new" : from.state);
      assert.match(said(help.effects), /personalised gifts/);
      const restart = transition(from, text("Start over"), ctx);
      assert.equal(restart.conversation.state, "awaiting_recipient", state);
      assert.equal(restart.conversation.journey, from.journey + 1);
      if (from.state === "generating") assert.ok(restart.effects.some((e) => e.type === "cancel_timer"));
      const cancel = transition(from, text("cancel"), ctx);
      // A paid order has nothing open to cancel: the shopper is reminded it is paid.
      if (state === "paid") assert.match(said(cancel.effects), /Your order 7KQ2-M9XD is paid/);
      else if (state !== "new" && state !== "cancelled")
        assert.equal(cancel.conversation.state, "cancelled", state);
      // The delivery draft is personal data: a restart or a cancel leaves none behind.
      for (const after of [restart, cancel]) {
        assert.equal(after.conversation.delivery, undefined, state);
        assert.equal(after.conversation.chosenDesignId, undefined, state);
      }
      if (DELIVERY_STATES.has(state)) assert.match(said(cancel.effects), /^Cancelled\. Write to me/);
    }
  });

  test("after a restart, a late result of the old journey's round is ignored", () => {
    const restarted = transition(at("generating"), text("restart"), ctx).conversation;
    const late = transition(
      restarted,
      { type: "generation_completed", roundId: "PN:555/j1/r1", designs: [{ id: "d", imageId: "i" }] },
      ctx,
    );
    assert.equal(late.outcome, "ignored");
  });
});

describe("every state answers every class of event", () => {
  const downstream: Event[] = [
    { type: "generation_completed", roundId: "x", designs: [{ id: "d", imageId: "i" }] },
    { type: "generation_failed", roundId: "x", reason: "r" },
    { type: "generation_rejected", roundId: "x", retryAfterMs: 1 },
    { type: "generation_deadline", roundId: "x" },
    { type: "payment_link", orderId: "x", orderNumber: "N", url: "https://p" },
    { type: "payment_failed", orderId: "x", orderNumber: "N", reason: "r" },
    { type: "payment_expired", orderId: "x", orderNumber: "N" },
    { type: "delivery_failed", outboundId: "x", reason: "r" },
  ];
  // Money moved on another order: the shopper is told, in every state.
  const money: Event[] = [
    { type: "payment_succeeded", orderId: "x", orderNumber: "N" },
    {
      type: "payment_refunded",
      orderId: "x",
      orderNumber: "N",
      reason: "cancelled_before_payment",
      amount: 1990,
      currency: "EUR",
    },
    { type: "payment_shipped", orderId: "x", orderNumber: "N" },
  ];
  const inputs: Event[] = [
    text("hello"),
    tap("bogus"),
    message({ kind: "media", media: "voice" }),
    message({ kind: "other", type: "location" }),
  ];
  for (const state of STATES) {
    test(state, () => {
      const from = at(state);
      const ctx = ctxFor(state);
      for (const event of [...inputs, ...downstream]) {
        const r = transition(from, event, ctx);
        if (event.type === "message")
          assert.ok(
            r.effects.some((e) => e.type === "send"),
            `${state} answers ${event.input.kind}`,
          );
        else assert.equal(r.outcome, "ignored", `${state} ignores a foreign ${event.type}`);
      }
      for (const event of money) {
        const r = transition(from, event, ctx);
        assert.equal(r.outcome, "notified", `${state} tells of ${event.type}`);
        assert.equal(r.conversation.state, from.state);
        assert.match(said(r.effects), / N\b/);
      }
    });
  }
});

describe("catalog and messages", () => {
  test("free text matches an option by name or alias, ignoring case, accents and punctuation", () => {
    assert.equal(matchOption(shop.themes, "Happy Birthday!!", "en")?.id, "birthday");
    assert.equal(matchOption(shop.themes, "CUMPLEAÑOS", "es")?.id, "birthday");
    assert.equal(matchOption(shop.themes, "thanks", "en")?.id, "thanks");
    assert.equal(matchOption(shop.themes, "banana", "en"), undefined);
    assert.equal(normalize("¡Acuarela, por favor!"), "acuarela por favor");
    assert.equal(shopFor(catalog, "any-number")?.id, "demo-shop");
  });

  test("commands in each language; placeholders must be filled", () => {
    assert.equal(commandOf(messages, "en", "Start over"), "restart");
    assert.equal(commandOf(messages, "es", "Empezar de nuevo"), "restart");
    assert.equal(commandOf(messages, "en", "restart please"), undefined);
    assert.throws(() => render(messages, "en", "askTheme"), /needs \{recipient\}/);
  });

  test("reply ids carry the step, journey and round", () => {
    const c = { ...at("choosing"), journey: 3, round: 2 };
    assert.equal(replyId("pick", c, "d1", 2), "pick:j3.r2:d1");
    assert.deepEqual(parseReplyId("pick:j3.r2:d1"), { step: "pick", journey: 3, round: 2, value: "d1" });
    assert.deepEqual(parseReplyId("theme:j1:birthday"), { step: "theme", journey: 1, value: "birthday" });
    assert.equal(parseReplyId("nonsense"), undefined);
    assert.equal(nextOrderIdOf(ctx, { ...c, orderCount: 4 }), "PN:555/o5");
  });

  test("the funnel counts each step once, in order", () => {
    assert.equal(funnelStep("new", "awaiting_recipient"), "started");
    assert.equal(funnelStep("generating", "choosing"), "generated");
    assert.equal(funnelStep("awaiting_payment", "choosing"), undefined);
    assert.equal(funnelStep("awaiting_payment", "paid"), "paid");
    assert.equal(funnelStep("choosing", "awaiting_address"), "chosen");
    assert.equal(funnelStep("choosing", "awaiting_delivery_method"), "chosen");
    assert.equal(funnelStep("awaiting_address", "awaiting_address"), undefined);
    assert.equal(funnelStep("confirming_delivery", "awaiting_payment"), "addressed");
    assert.equal(funnelStep("resuming", "awaiting_payment"), undefined);
  });
});

describe("orders: cancel, replace, restart and every payment event", () => {
  const order = (c: Conversation) => ({ orderId: c.order?.id ?? "", orderNumber: "7KQ2-M9XD" });

  test('"cancel" with an order open cancels that order, and its later events are not the journey\'s', () => {
    const linked = at("awaiting_payment");
    const cancelled = transition(linked, text("cancel"), ctx);
    assert.equal(cancelled.conversation.state, "cancelled");
    assert.equal(cancelled.conversation.order, undefined);
    assert.deepEqual(
      cancelled.effects.filter((e) => e.type === "cancel_order"),
      [{ type: "cancel_order", orderId: linked.order?.id, reason: "shopper" }],
    );
    assert.match(said(cancelled.effects), /order is cancelled and its payment link no longer works/);
    // The payment service refunds a payment that still lands; the shopper is told so.
    const refunded = transition(
      cancelled.conversation,
      {
        type: "payment_refunded",
        ...order(linked),
        reason: "cancelled_before_payment",
        amount: 1990,
        currency: "EUR",
      },
      ctx,
    );
    assert.equal(refunded.outcome, "notified");
    assert.match(
      said(refunded.effects),
      /You cancelled order 7KQ2-M9XD before paying, so your payment of €19\.90 has been refunded/,
    );
    // Paid before the cancel reached the payment service: kept, and confirmed.
    const paidFirst = transition(
      cancelled.conversation,
      { type: "payment_succeeded", ...order(linked) },
      ctx,
    );
    assert.equal(paidFirst.outcome, "notified");
    assert.match(said(paidFirst.effects), /Payment received for order 7KQ2-M9XD/);
  });

  test("another design while an order is open replaces it: the old one cancelled, a new order asked for", () => {
    const linked = at("awaiting_payment");
    const other = transition(linked, tap("pick:j1.r1:d3"), ctx);
    assert.equal(other.outcome, "advanced");
    assert.deepEqual(
      other.effects
        .filter((e) => e.type === "cancel_order" || e.type === "request_payment")
        .map((e) => e.type),
      ["cancel_order", "request_payment"],
    );
    assert.deepEqual(
      other.effects.find((e) => e.type === "cancel_order"),
      {
        type: "cancel_order",
        orderId: "PN:555/o1",
        reason: "replaced",
      },
    );
    const request = other.effects.find((e) => e.type === "request_payment");
    assert.equal(request?.type === "request_payment" && request.orderId, "PN:555/o2");
    assert.equal(other.conversation.order?.designId, "d3");
    // Typed by number too; the same design again is the same order and link.
    assert.ok(transition(linked, text("1"), ctx).effects.some((e) => e.type === "cancel_order"));
    assert.ok(!transition(linked, text("2"), ctx).effects.some((e) => e.type === "cancel_order"));
    // The replaced order paid all the same: kept and confirmed, the new one still open.
    const late = transition(other.conversation, { type: "payment_succeeded", ...order(linked) }, ctx);
    assert.equal(late.conversation.state, "awaiting_payment");
    assert.equal(late.conversation.order?.id, "PN:555/o2");
    assert.match(said(late.effects), /Payment received for order 7KQ2-M9XD/);
  });

  test('"restart" leaves an open order payable, and its payment is confirmed in the new journey', () => {
    const linked = at("awaiting_payment");
    const restarted = transition(linked, text("restart"), ctx);
    assert.ok(!restarted.effects.some((e) => e.type === "cancel_order"));
    assert.equal(restarted.conversation.orderCount, 1, "the next order is a new one");
    const named = transition(restarted.conversation, text("Leo"), ctx).conversation;
    const paid = transition(named, { type: "payment_succeeded", ...order(linked) }, ctx);
    assert.equal(paid.outcome, "notified");
    assert.equal(paid.conversation.state, "awaiting_theme");
    assert.match(said(paid.effects), /Payment received for order 7KQ2-M9XD/);
  });

  // The table walked state by state with the current order's events: a conversation in each state
  // holding an order, as awaiting_payment and paid do (and the others could only by a bug).
  for (const state of STATES) {
    test(`the current order's payment events in ${state}`, () => {
      const base = at("awaiting_payment");
      const ctx = ctxFor(state);
      const from: Conversation = { ...at(state), order: base.order ?? { id: "PN:555/o1", designId: "d2" } };
      const events: PaymentEvent[] = [
        { type: "payment_link", ...order(from), url: "https://pay.local/o/2" },
        { type: "payment_succeeded", ...order(from) },
        { type: "payment_failed", ...order(from), reason: "declined (checkout 1)" },
        { type: "payment_expired", ...order(from) },
        {
          type: "payment_refunded",
          ...order(from),
          reason: "by_shop",
          amount: 1990,
          currency: "EUR",
        },
        { type: "payment_shipped", ...order(from), trackingUrl: "https://track.example/1" },
      ];
      for (const event of events) {
        const r = transition(from, event, ctx);
        const row = PAYMENT_TABLE[event.type];
        const action = row.current[state] ?? row.otherwise;
        const text = said(r.effects);
        switch (action) {
          case "show_link":
            assert.equal(r.conversation.order?.link, "https://pay.local/o/2");
            assert.match(text, /Tap to pay securely/);
            break;
          case "paid":
            assert.equal(r.conversation.state, "paid");
            assert.match(text, /Your order number is 7KQ2-M9XD/);
            break;
          case "confirm_paid":
            assert.equal(r.conversation.state, state);
            assert.match(text, /Payment received for order 7KQ2-M9XD/);
            break;
          case "choose_again":
            assert.equal(r.conversation.state, "choosing");
            assert.equal(r.conversation.order, undefined);
            break;
          case "tell_refund":
            assert.equal(r.conversation.state, state);
            assert.match(text, /Order 7KQ2-M9XD has been refunded/);
            break;
          case "tell_shipped":
            assert.equal(r.conversation, from);
            assert.match(text, /order 7KQ2-M9XD\) is on its way/);
            break;
          case "ignore":
            assert.equal(r.outcome, "ignored");
            assert.deepEqual(r.effects, []);
            break;
        }
        // Only a paid order's restated success goes unsaid.
        if (event.type === "payment_succeeded" && state !== "paid") assert.notEqual(r.outcome, "ignored");
      }
    });
  }
});

describe("stale Start over, names and notices from WhatsApp", () => {
  test("an old Start over button is stale outside the resuming prompt", () => {
    const resuming = at("resuming");
    const offeredRestart = offered(
      transition(at("awaiting_theme"), text("back", 1_000_000 + ctx.sessionTtlMs + 1), ctx).effects,
    ).find((id) => id.includes(":restart"));
    assert.ok(offeredRestart);
    assert.equal(transition(resuming, tap(offeredRestart), ctx).outcome, "command");
    for (const state of ["generating", "awaiting_payment", "choosing"] as const) {
      const r = transition(at(state), tap(offeredRestart), ctx);
      assert.equal(r.outcome, "stale", state);
      assert.equal(r.conversation.journey, 1);
      assert.equal(r.conversation.state, state);
    }
  });

  test("a recipient's name is at most the contract's length, counted in characters, never cut", () => {
    const asking = at("awaiting_recipient");
    const forty = "Ñ".repeat(20) + "🎁".repeat(20);
    assert.equal(transition(asking, text(forty), ctx).conversation.recipient, forty);
    const r = transition(asking, text(`${forty}x`), ctx);
    assert.equal(r.outcome, "reprompted");
    assert.equal(r.conversation.recipient, undefined);
  });

  test("a number-change notice is no message from the shopper: no reply, no activity", () => {
    for (const state of STATES) {
      const from = at(state);
      const ctx = ctxFor(state);
      const r = transition(
        from,
        message({ kind: "other", type: "system.user_changed_number" }, 5_000_000),
        ctx,
      );
      assert.equal(r.outcome, "ignored", state);
      assert.deepEqual(r.effects, []);
      assert.equal(r.conversation, from);
    }
  });
});

describe("where the gift goes", () => {
  const prompted = (r: { effects: Parameters<typeof said>[0] }) => said(r.effects);

  test("an address, one field at a time: country, name, street (two lines), city, postcode; confirmed", () => {
    const choosing = at("choosing");
    const picked = transition(choosing, tap("pick:j1.r1:d2"), ctx);
    assert.equal(picked.outcome, "advanced");
    assert.equal(picked.conversation.state, "awaiting_address");
    assert.equal(picked.conversation.chosenDesignId, "d2");
    assert.match(
      prompted(picked),
      /^Which country should we send it to\? \{Spain\|Portugal\|France\|Germany\|Italy\|Ireland\|Netherlands\|United Kingdom\}$/,
    );
    assert.deepEqual(
      offered(picked.effects),
      ["ES", "PT", "FR", "DE", "IT", "IE", "NL", "GB"].map((code) => `country:j1:${code}`),
    );

    const steps: [Event, RegExp, string | undefined][] = [
      [tap("country:j1:ES"), /^Who should the parcel be addressed to\?/, "name"],
      [text("  Ana   López "), /^What's the street and number\? If there's a flat or floor/, "street"],
      [text("Calle Mayor 1\n 3º B "), /^Which town or city\?$/, "city"],
      [text("Madrid"), /^And the postcode\? For example: 28013$/, "postcode"],
      [
        text("28013"),
        /^Please check where the gift goes:\n\nAna López\nCalle Mayor 1\n3º B\n28013 Madrid\nSpain\n\nIs everything right\? \[Confirm\|Change\]$/,
        undefined,
      ],
    ];
    let c = picked.conversation;
    for (const [event, asks, field] of steps) {
      const r = transition(c, event, ctx);
      assert.equal(r.outcome, "advanced");
      assert.match(prompted(r), asks);
      assert.equal(r.conversation.asking, field);
      c = r.conversation;
    }
    assert.equal(c.state, "confirming_delivery");
    assert.deepEqual(offered(transition(c, text("hmm"), ctx).effects), ["addr:j1:ok", "addr:j1:change"]);
    assert.deepEqual(c.delivery, {
      method: "address",
      country: "ES",
      name: "Ana López",
      line1: "Calle Mayor 1",
      line2: "3º B",
      city: "Madrid",
      postcode: "28013",
    });

    // Confirmed by a tap or in words.
    for (const confirm of [tap("addr:j1:ok"), text("yes"), text("Confirm")]) {
      const r = transition(c, confirm, ctx);
      assert.equal(r.conversation.state, "awaiting_payment");
      assert.equal(r.conversation.chosenDesignId, undefined);
      assert.match(prompted(r), /^Great choice! Preparing your checkout…$/);
      const request = r.effects.find((e) => e.type === "request_payment");
      assert.equal(request?.type === "request_payment" && request.designId, "d2");
    }
  });

  test("a country in words: its code or a name in any language; one not served is named", () => {
    const asking = at("awaiting_address");
    for (const [words, code] of [
      ["españa", "ES"],
      ["ESPANA", "ES"],
      ["Spain", "ES"],
      ["es", "ES"],
      ["the netherlands", "NL"],
      ["Países Bajos", "NL"],
      ["UK", "GB"],
      ["Reino Unido", "GB"],
    ] as const) {
      const r = transition(asking, text(words), ctx);
      assert.equal(r.conversation.delivery?.country, code, words);
      assert.equal(r.conversation.asking, "name");
    }
    const mexico = transition(asking, text("México"), ctx);
    assert.equal(mexico.outcome, "reprompted");
    assert.equal(mexico.conversation.asking, "country");
    assert.match(
      said(mexico.effects),
      /^Sorry, we can't send gifts to Mexico\. .*\nWhich country should we send it to\?/,
    );
    const nowhere = transition(asking, text("Atlantis"), ctx);
    assert.match(
      said(nowhere.effects),
      /^Please pick the country from the list, or write its name\.\nWhich country/,
    );
  });

  test("a shop shipping to one country never asks it", () => {
    const sctx = context({ shop: spainShop });
    const picked = transition(at("choosing"), tap("pick:j1.r1:d1"), sctx);
    assert.equal(picked.conversation.state, "awaiting_address");
    assert.equal(picked.conversation.asking, "name");
    assert.match(said(picked.effects), /^Who should the parcel be addressed to\?/);
    const confirming = runIn(sctx, picked.conversation, ...SPAIN.slice(1));
    assert.match(said(confirming.effects), /28013 Madrid\nSpain/);
    const change = transition(confirming.conversation, tap("addr:j1:change"), sctx);
    assert.ok(!offered(change.effects).includes("change:j1:country"), "nothing to change it to");
    const ordered = transition(confirming.conversation, tap("addr:j1:ok"), sctx);
    const request = ordered.effects.find((e) => e.type === "request_payment");
    assert.equal(
      request?.type === "request_payment" &&
        request.delivery.method === "address" &&
        request.delivery.country,
      "ES",
    );
  });

  test("a postcode of the wrong shape is asked again, with the country's example; a right one is normalised", () => {
    const postcode = run(
      at("awaiting_address"),
      tap("country:j1:GB"),
      text("Ann Lee"),
      text("10 Downing St"),
      text("London"),
    );
    assert.equal(postcode.conversation.asking, "postcode");
    assert.match(said(postcode.effects), /For example: SW1A 1AA/);
    for (const wrong of ["28013", "SW1A", "hello world", ""]) {
      const r = transition(postcode.conversation, text(wrong), ctx);
      assert.equal(r.outcome, "reprompted", wrong);
      assert.equal(r.conversation.state, "awaiting_address");
      assert.equal(r.conversation.asking, "postcode");
      assert.equal(
        said(r.effects),
        "That doesn't look right: United Kingdom postcodes look like SW1A 1AA. What's the postcode?",
      );
    }
    const right = transition(postcode.conversation, text("sw1a2aa"), ctx);
    assert.equal(right.conversation.delivery?.postcode, "SW1A 2AA");
    assert.match(said(right.effects), /\nSW1A 2AA London\nUnited Kingdom\n/);
  });

  test("a name, a street and a city out of bounds are asked again, saying what is wanted", () => {
    const name = at("awaiting_address");
    const naming = transition(name, tap("country:j1:FR"), ctx).conversation;
    for (const [answer, asks] of [
      ["A", /^Please send a full name, from 2 to 70 characters\.$/],
      ["12345", /^Please send a full name/],
      ["Ñ".repeat(71), /^Please send a full name/],
    ] as const) {
      const r = transition(naming, text(answer), ctx);
      assert.equal(r.outcome, "reprompted");
      assert.equal(r.conversation.asking, "name");
      assert.match(said(r.effects), asks);
    }
    assert.equal(transition(naming, text("Ñ".repeat(70)), ctx).conversation.asking, "street");
    const street = transition(naming, text("Jo"), ctx).conversation;
    for (const answer of [
      "Rue de Rivoli 1\nEscalier B\n3e étage",
      "x".repeat(101),
      `Rue de Rivoli 1\n${"y".repeat(101)}`,
      "--",
    ]) {
      const r = transition(street, text(answer), ctx);
      assert.equal(r.outcome, "reprompted", answer);
      assert.match(said(r.effects), /^Please send the street and number on one line/);
    }
    const city = transition(street, text("Rue de Rivoli 1"), ctx).conversation;
    assert.equal(city.delivery?.line2, undefined);
    const long = transition(city, text("P".repeat(61)), ctx);
    assert.match(said(long.effects), /^Please send the name of the town or city, up to 60 characters\.$/);
    assert.equal(transition(city, text("Paris"), ctx).conversation.asking, "postcode");
  });

  test("a voice note or a location at an address step: text only, and the same question again", () => {
    const street = run(at("awaiting_address"), ...SPAIN.slice(0, 2)).conversation;
    assert.equal(street.asking, "street");
    for (const input of [
      { kind: "media", media: "voice" },
      { kind: "other", type: "location" },
    ] as const) {
      const r = transition(street, message(input), ctx);
      assert.equal(r.outcome, "reprompted");
      assert.deepEqual(r.conversation.delivery, street.delivery);
      assert.match(
        said(r.effects),
        /^I can only read text and buttons here, sorry\.\nWhat's the street and number\?/,
      );
    }
  });

  test("Change → postcode: only the postcode is asked, then the details again; the rest kept", () => {
    const confirming = at("confirming_delivery");
    const change = transition(confirming, tap("addr:j1:change"), ctx);
    assert.equal(change.conversation.state, "changing_delivery");
    assert.match(
      said(change.effects),
      /^What would you like to change\? \{Name\|Street\|Town or city\|Postcode\|Country\|Nothing, it's all right\}$/,
    );
    assert.deepEqual(offered(change.effects), [
      "change:j1:name",
      "change:j1:street",
      "change:j1:city",
      "change:j1:postcode",
      "change:j1:country",
      "change:j1:keep",
    ]);
    for (const choice of [tap("change:j1:postcode"), text("postcode"), text("Postcode"), text("zip")]) {
      const r = transition(change.conversation, choice, ctx);
      assert.equal(r.conversation.state, "awaiting_address");
      assert.equal(r.conversation.asking, "postcode");
      assert.match(said(r.effects), /^And the postcode\? For example: 28013$/);
    }
    const asked = transition(change.conversation, tap("change:j1:postcode"), ctx).conversation;
    const fixed = transition(asked, text("28014"), ctx);
    assert.equal(fixed.conversation.state, "confirming_delivery");
    assert.deepEqual(fixed.conversation.delivery, { ...confirming.delivery, postcode: "28014" });
    assert.match(said(fixed.effects), /Ana López\nCalle Mayor 1\n3º B\n28014 Madrid\nSpain/);
    // A street changed to one line has no second line any more.
    const street = run(change.conversation, tap("change:j1:street"), text("Gran Vía 28")).conversation;
    assert.equal(street.state, "confirming_delivery");
    assert.equal(street.delivery?.line1, "Gran Vía 28");
    assert.equal(street.delivery?.line2, undefined);
    assert.equal(street.delivery?.postcode, "28013");
    // Nothing to change after all.
    const kept = transition(change.conversation, tap("change:j1:keep"), ctx);
    assert.equal(kept.conversation.state, "confirming_delivery");
    assert.deepEqual(kept.conversation.delivery, confirming.delivery);
    assert.equal(transition(change.conversation, text("nonsense"), ctx).outcome, "reprompted");
  });

  test("a new country re-checks the postcode: asked again if it does not fit, kept if it does", () => {
    const changing = at("changing_delivery");
    const country = transition(changing, tap("change:j1:country"), ctx);
    assert.equal(country.conversation.asking, "country");
    const uk = transition(country.conversation, tap("country:j1:GB"), ctx);
    assert.equal(uk.conversation.state, "awaiting_address");
    assert.equal(uk.conversation.asking, "postcode");
    assert.equal(uk.conversation.delivery?.postcode, undefined);
    assert.match(said(uk.effects), /^And the postcode\? For example: SW1A 1AA$/);
    const done = transition(uk.conversation, text("EC1A 1BB"), ctx);
    assert.equal(done.conversation.state, "confirming_delivery");
    assert.match(said(done.effects), /Ana López\nCalle Mayor 1\n3º B\nEC1A 1BB Madrid\nUnited Kingdom/);
    // 28013 is a French postcode's shape too.
    const france = transition(country.conversation, text("France"), ctx);
    assert.equal(france.conversation.state, "confirming_delivery");
    assert.equal(france.conversation.delivery?.postcode, "28013");
  });

  test("stale taps at the delivery steps are recognised and not applied", () => {
    const naming = transition(at("awaiting_address"), tap("country:j1:ES"), ctx).conversation;
    const oldCountry = transition(naming, tap("country:j1:PT"), ctx);
    assert.equal(oldCountry.outcome, "stale");
    assert.equal(oldCountry.conversation.delivery?.country, "ES");
    assert.match(
      said(oldCountry.effects),
      /^That button belongs to an earlier message\.\nWho should the parcel/,
    );
    const changing = at("changing_delivery");
    assert.equal(transition(changing, tap("addr:j1:ok"), ctx).outcome, "stale");
    assert.equal(transition(at("confirming_delivery"), tap("change:j1:name"), ctx).outcome, "stale");
    assert.equal(transition(at("confirming_delivery"), tap("addr:j0:ok"), ctx).outcome, "stale");
    assert.equal(transition(at("awaiting_address"), tap("delivery:j1:pickup"), ctx).outcome, "stale");
    const paying = at("awaiting_payment");
    const late = transition(paying, tap("addr:j1:ok"), ctx);
    assert.equal(late.outcome, "stale");
    assert.ok(!late.effects.some((e) => e.type === "request_payment"), "one order per confirmation");
    // A design of an earlier round.
    const r2 = { ...at("awaiting_address"), round: 2 };
    assert.equal(transition(r2, tap("pick:j1.r1:d1"), ctx).outcome, "stale");
  });

  test("another design of the round while asking: chosen instead, the same question again", () => {
    const street = run(at("awaiting_address"), ...SPAIN.slice(0, 2)).conversation;
    const other = transition(street, tap("pick:j1.r1:d3"), ctx);
    assert.equal(other.outcome, "advanced");
    assert.equal(other.conversation.chosenDesignId, "d3");
    assert.equal(other.conversation.asking, "street");
    assert.match(said(other.effects), /^Design 3 it is\.\nWhat's the street and number\?/);
    assert.equal(transition(other.conversation, tap("pick:j1.r1:d3"), ctx).outcome, "reprompted");
    const ordered = run(other.conversation, ...SPAIN.slice(2), tap("addr:j1:ok"));
    const request = ordered.all.find((e) => e.type === "request_payment");
    assert.equal(request?.type === "request_payment" && request.designId, "d3");
  });

  test("more designs while asking: a new round, and the delivery said so far is kept", () => {
    const street = run(at("awaiting_address"), ...SPAIN.slice(0, 2)).conversation;
    const more = transition(street, tap("more:j1.r1:more"), ctx);
    assert.equal(more.conversation.state, "generating");
    assert.equal(more.conversation.asking, undefined);
    assert.ok(more.effects.some((e) => e.type === "request_generation"));
    const shown = transition(
      more.conversation,
      { type: "generation_completed", roundId: "PN:555/j1/r2", designs: [{ id: "n1", imageId: "i" }] },
      ctx,
    );
    const picked = transition(shown.conversation, tap("pick:j1.r2:n1"), ctx);
    assert.equal(picked.conversation.asking, "street", "on from where the shopper was");
    assert.equal(picked.conversation.delivery?.name, "Ana López");
  });

  test("back after the session TTL at a delivery step: continue asks the same field", () => {
    const city = run(at("awaiting_address"), ...SPAIN.slice(0, 3)).conversation;
    const later = 1_000_000 + ctx.sessionTtlMs + 1;
    const back = transition(city, text("Madrid", later), ctx);
    assert.equal(back.conversation.state, "resuming");
    const continued = transition(back.conversation, tap("resume:j1:continue", later + 1), ctx);
    assert.equal(continued.conversation.state, "awaiting_address");
    assert.equal(continued.conversation.asking, "city");
    assert.match(said(continued.effects), /^Which town or city\?$/);
  });

  test("restart and cancel clear the delivery draft: it is personal data", () => {
    const confirming = at("confirming_delivery");
    assert.ok(confirming.delivery?.line1);
    for (const command of ["restart", "cancel"]) {
      const r = transition(confirming, text(command), ctx);
      assert.equal(r.conversation.delivery, undefined);
      assert.equal(r.conversation.chosenDesignId, undefined);
      assert.equal(r.conversation.asking, undefined);
      assert.ok(!r.effects.some((e) => e.type === "cancel_order"), "no order was open");
    }
    assert.match(said(transition(confirming, text("cancel"), ctx).effects), /^Cancelled\. Write to me/);
  });

  test("another design while the order awaits payment: a new order to the same confirmed delivery", () => {
    const paying = at("awaiting_payment");
    const other = transition(paying, tap("pick:j1.r1:d1"), ctx);
    assert.equal(other.conversation.state, "awaiting_payment");
    assert.deepEqual(
      other.effects.filter((e) => e.type !== "send").map((e) => e.type),
      ["cancel_order", "request_payment"],
    );
    assert.equal(said(other.effects), "Great choice! Preparing your checkout…", "nothing asked again");
    const request = other.effects.find((e) => e.type === "request_payment");
    assert.ok(request?.type === "request_payment");
    assert.equal(request.orderId, "PN:555/o2");
    assert.equal(request.designId, "d1");
    assert.deepEqual(request.delivery, {
      method: "address",
      name: "Ana López",
      line1: "Calle Mayor 1",
      line2: "3º B",
      city: "Madrid",
      postcode: "28013",
      country: "ES",
    });
    // An order made before delivery was asked for: the new one asks for it.
    const { delivery: _none, ...legacy } = paying;
    const asked = transition(legacy, tap("pick:j1.r1:d1"), ctx);
    assert.deepEqual(
      asked.effects.filter((e) => e.type !== "send").map((e) => e.type),
      ["cancel_order"],
    );
    assert.equal(asked.conversation.state, "awaiting_address");
    assert.equal(asked.conversation.order, undefined);
  });

  test("paid: the conversation keeps no copy of the delivery", () => {
    assert.ok(at("awaiting_payment").delivery);
    assert.equal(at("paid").delivery, undefined);
  });

  test("pickup: how, where, who collects; confirmed", () => {
    const picked = transition(at("choosing"), tap("pick:j1.r1:d2"), pctx);
    assert.equal(picked.conversation.state, "awaiting_delivery_method");
    assert.match(said(picked.effects), /^Where should the gift go\?.*\[Send to an address\|Pick it up\]$/);
    assert.deepEqual(offered(picked.effects), ["delivery:j1:address", "delivery:j1:pickup"]);
    assert.equal(
      transition(picked.conversation, text("Pick it up"), pctx).conversation.state,
      "awaiting_pickup",
    );
    assert.equal(transition(picked.conversation, text("send it"), pctx).conversation.asking, "country");

    const where = transition(picked.conversation, tap("delivery:j1:pickup"), pctx);
    assert.equal(where.conversation.asking, "location");
    assert.match(
      said(where.effects),
      /^Where would you like to pick it up\? \{Madrid centre\|Lisbon Baixa\}$/,
    );
    assert.deepEqual(offered(where.effects), ["pickup:j1:madrid-centro", "pickup:j1:lisboa-baixa"]);
    assert.equal(
      transition(where.conversation, text("lisboa baixa"), pctx).conversation.delivery?.locationId,
      "lisboa-baixa",
    );
    assert.equal(transition(where.conversation, text("Paris"), pctx).outcome, "reprompted");

    const who = transition(where.conversation, tap("pickup:j1:lisboa-baixa"), pctx);
    assert.equal(who.conversation.state, "awaiting_pickup");
    assert.equal(who.conversation.asking, "name");
    assert.match(said(who.effects), /^Who will collect it\?/);
    const confirming = transition(who.conversation, text("Leo"), pctx);
    assert.equal(confirming.conversation.state, "confirming_delivery");
    assert.equal(
      said(confirming.effects),
      "Please check:\n\nPick up at Lisbon Baixa, Rua Augusta 10, 1100-053 Lisboa\nCollected by Leo\n\nIs everything right? [Confirm|Change]",
    );
    const change = transition(confirming.conversation, tap("addr:j1:change"), pctx);
    assert.deepEqual(offered(change.effects), [
      "change:j1:location",
      "change:j1:name",
      "change:j1:method",
      "change:j1:keep",
    ]);
    const ordered = transition(confirming.conversation, tap("addr:j1:ok"), pctx);
    const request = ordered.effects.find((e) => e.type === "request_payment");
    assert.deepEqual(request?.type === "request_payment" && request.delivery, {
      method: "pickup",
      locationId: "lisboa-baixa",
      name: "Leo",
    });
  });

  test("a change of method asks only what the other method lacks; the name is kept", () => {
    const confirming = runIn(
      pctx,
      at("awaiting_pickup"),
      tap("pickup:j1:madrid-centro"),
      text("Leo Martín"),
      tap("addr:j1:change"),
      tap("change:j1:method"),
    );
    assert.equal(confirming.conversation.state, "awaiting_delivery_method");
    const address = runIn(pctx, confirming.conversation, tap("delivery:j1:address"));
    assert.equal(address.conversation.asking, "country");
    const done = runIn(pctx, address.conversation, tap("country:j1:ES"), ...SPAIN.slice(2));
    assert.equal(done.conversation.state, "confirming_delivery");
    assert.match(said(done.effects), /^Please check where the gift goes:\n\nLeo Martín\nCalle Mayor 1/);
    // Back to pickup: nothing left to ask.
    const back = runIn(
      pctx,
      done.conversation,
      tap("addr:j1:change"),
      tap("change:j1:method"),
      text("pickup"),
    );
    assert.equal(back.conversation.state, "confirming_delivery");
    assert.match(said(back.effects), /Pick up at Madrid centre/);
  });

  test("in Spanish: the questions, the countries and the confirmation", () => {
    const es = { ...shop, language: "es" };
    const c = context({ shop: es });
    const choosing = { ...at("choosing"), language: "es" };
    const picked = transition(choosing, tap("pick:j1.r1:d2"), c);
    assert.match(
      said(picked.effects),
      /^¿A qué país lo enviamos\? \{España\|Portugal\|Francia\|Alemania\|Italia\|Irlanda\|Países Bajos\|Reino Unido\}$/,
    );
    const wrong = runIn(
      c,
      picked.conversation,
      text("España"),
      text("Ana"),
      text("Calle Mayor 1"),
      text("Madrid"),
      text("2801"),
    );
    assert.equal(
      said(wrong.effects),
      "Eso no parece un código postal de España: debería ser como 28013. ¿Cuál es el código postal?",
    );
    const confirming = transition(wrong.conversation, text("28013"), c);
    assert.match(
      said(confirming.effects),
      /^Comprueba a dónde va el regalo:\n\nAna\nCalle Mayor 1\n28013 Madrid\nEspaña\n\n¿Está todo bien\? \[Confirmar\|Cambiar\]$/,
    );
    assert.equal(transition(confirming.conversation, text("sí"), c).conversation.state, "awaiting_payment");
    assert.equal(
      transition(confirming.conversation, text("cambiar"), c).conversation.state,
      "changing_delivery",
    );
  });

  for (const [language, withTracking, without] of [
    [
      "en",
      "Your gift (order 7KQ2-M9XD) is on its way! 📦\nTrack it here: https://track.example/7KQ2",
      "Your gift (order 7KQ2-M9XD) is on its way! 📦",
    ],
    [
      "es",
      "¡Tu regalo (pedido 7KQ2-M9XD) está en camino! 📦\nSíguelo aquí: https://track.example/7KQ2",
      "¡Tu regalo (pedido 7KQ2-M9XD) está en camino! 📦",
    ],
  ] as const) {
    test(`shipped (${language}): the shopper is told, with the tracking link when there is one`, () => {
      const paid = { ...at("paid"), language };
      const event = {
        type: "payment_shipped",
        orderId: paid.order?.id ?? "",
        orderNumber: "7KQ2-M9XD",
      } as const;
      const tracked = transition(paid, { ...event, trackingUrl: "https://track.example/7KQ2" }, ctx);
      assert.equal(tracked.outcome, "notified");
      assert.equal(tracked.conversation, paid);
      assert.equal(said(tracked.effects), withTracking);
      assert.equal(said(transition(paid, event, ctx).effects), without);
      // Whatever the journey is doing now, e.g. a new gift under way.
      const elsewhere = transition({ ...at("awaiting_theme"), language }, event, ctx);
      assert.equal(elsewhere.outcome, "notified");
      assert.equal(elsewhere.conversation.state, "awaiting_theme");
    });
  }
});

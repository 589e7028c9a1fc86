import { contracts } from "@taituri/proto";
import { matchOption, type Option, type Shop } from "./catalog.ts";
import { commandOf, type MessageCatalog, type MessageKey, render } from "./messages.ts";

/**
 * The gift journey as a pure state machine: (conversation, event, context) -> (conversation,
 * effects). No I/O: the consumer makes the result durable and runs the effects. Every state
 * answers every kind of event; an event with no transition is an explicit outcome ("reprompted",
 * "stale" or "ignored"), never a silent no-op.
 */
export type State =
  | "new"
  | "awaiting_recipient"
  | "awaiting_theme"
  | "awaiting_style"
  /** Everything chosen; the "create designs" button is showing. The safe state to fall back to. */
  | "ready"
  /** A round is out for generation: this state is the lock that keeps it to one. */
  | "generating"
  | "choosing"
  | "awaiting_payment"
  | "paid"
  /** Back after the session TTL: continue, or start over. */
  | "resuming"
  | "cancelled";

export const STATES: readonly State[] = [
  "new",
  "awaiting_recipient",
  "awaiting_theme",
  "awaiting_style",
  "ready",
  "generating",
  "choosing",
  "awaiting_payment",
  "paid",
  "resuming",
  "cancelled",
];

export interface Design {
  id: string;
  imageId: string;
}

export interface Conversation {
  state: State;
  language: string;
  shopId: string;
  /** Bumped by every restart; reply ids and round ids carry it, so nothing of an old journey applies. */
  journey: number;
  recipient?: string;
  theme?: string;
  style?: string;
  /** Rounds started in this journey (attempts, failed ones included). */
  round: number;
  /** Rounds that produced designs. */
  completedRounds: number;
  designs: Design[];
  /** The order of this journey awaiting payment or paid; `number` is the one people read. */
  order?: { id: string; designId: string; number?: string; link?: string };
  /**
   * Orders this conversation has asked for, over all its journeys: each order id counts one more,
   * so a new order is never an earlier one (which may still be open: "restart" leaves it payable).
   * Absent on conversations stored before it existed: 0.
   */
  orderCount?: number;
  /** When the shopper last wrote (ms since epoch). */
  lastActivityAt?: number;
  /** Where "continue" returns to from "resuming". */
  resumeState?: State;
}

/** What the shopper sent, reduced to what the journey cares about. */
export type Input =
  | { kind: "text"; text: string }
  | { kind: "reply"; id: string; title: string }
  | { kind: "media"; media: string }
  | { kind: "other"; type: string };

export type Event =
  | { type: "message"; messageId: string; at: number; shopperName: string; input: Input }
  | { type: "generation_completed"; roundId: string; designs: Design[] }
  | { type: "generation_failed"; roundId: string; reason: string }
  | { type: "generation_rejected"; roundId: string; retryAfterMs: number }
  | { type: "generation_deadline"; roundId: string }
  | { type: "payment_link"; orderId: string; orderNumber: string; url: string }
  | { type: "payment_succeeded"; orderId: string; orderNumber: string }
  | { type: "payment_failed"; orderId: string; orderNumber: string; reason: string }
  | { type: "payment_expired"; orderId: string; orderNumber: string }
  | {
      type: "payment_refunded";
      orderId: string;
      orderNumber: string;
      reason: RefundReason;
      amount: number;
      currency: string;
    }
  | { type: "delivery_failed"; outboundId: string; reason: string };

export type PaymentEvent = Extract<Event, { orderId: string }>;
export type RefundReason = "cancelled_before_payment" | "by_shop";

export type Outgoing =
  | { kind: "text"; text: string }
  | { kind: "buttons"; body: string; buttons: { id: string; title: string }[] }
  | {
      kind: "list";
      body: string;
      button: string;
      rows: { id: string; title: string; description?: string }[];
    }
  | { kind: "image"; imageId: string; caption: string }
  | { kind: "cta"; body: string; displayText: string; url: string };

export type Effect =
  | { type: "send"; message: Outgoing }
  | {
      type: "request_generation";
      roundId: string;
      recipient: string;
      theme: string;
      style: string;
      productId: string;
      count: number;
    }
  | {
      type: "request_payment";
      orderId: string;
      designId: string;
      imageId: string;
      productId: string;
      amount: number;
      currency: string;
    }
  /** Close an open order's checkout: the shopper cancelled it, or chose another design instead. */
  | { type: "cancel_order"; orderId: string; reason: "shopper" | "replaced" }
  | { type: "schedule_timer"; timerId: string; roundId: string; at: number }
  | { type: "cancel_timer"; timerId: string };

/**
 * advanced: the journey moved. reprompted: no transition; the shopper is asked again. stale: a tap
 * on a button of an earlier step or round, recognised and not applied. ignored: a late or foreign
 * downstream event (a result for an abandoned round, a second confirmation), or a notice from
 * WhatsApp itself, counted. notified: the shopper is told of something that leaves the journey
 * where it is (an earlier order paid, a refund). command: help, restart or cancel.
 */
export type Outcome = "advanced" | "reprompted" | "stale" | "ignored" | "notified" | "command";

export interface Result {
  conversation: Conversation;
  effects: Effect[];
  outcome: Outcome;
}

export interface Context {
  conversationId: string;
  shop: Shop;
  messages: MessageCatalog;
  now: number;
  /** A shopper silent for longer than this is offered "continue" or "start over". */
  sessionTtlMs: number;
  /** A round without a result after this long is abandoned (watchdog). */
  generationDeadlineMs: number;
}

export const initialConversation = (shop: Shop): Conversation => ({
  state: "new",
  language: shop.language,
  shopId: shop.id,
  journey: 1,
  round: 0,
  completedRounds: 0,
  designs: [],
});

/**
 * Ids of the current round and of the next order: derived from the conversation, so a replay of the
 * same step yields the same ids. Internal ids (they hold the conversation id, so the shopper's phone
 * number or BSUID): the shopper and the payment provider see the order number instead.
 */
export const roundIdOf = (ctx: Context, c: Conversation, round = c.round) =>
  `${ctx.conversationId}/j${c.journey}/r${round}`;
export const nextOrderIdOf = (ctx: Context, c: Conversation) =>
  `${ctx.conversationId}/o${(c.orderCount ?? 0) + 1}`;
const timerIdOf = (roundId: string) => `deadline:${roundId}`;

/**
 * Reply ids: "<step>:<journey>[.<round>]:<value>". The journey and round say which prompt a tap
 * answers, so a tap on an old message is recognised instead of being applied to the current step.
 */
export function replyId(step: string, c: Conversation, value: string, round?: number): string {
  return `${step}:j${c.journey}${round === undefined ? "" : `.r${round}`}:${value}`;
}

export function parseReplyId(
  id: string,
): { step: string; journey: number; round?: number; value: string } | undefined {
  const match = /^([a-z]+):j(\d+)(?:\.r(\d+))?:(.*)$/.exec(id);
  if (!match?.[1] || !match[2]) return undefined;
  return {
    step: match[1],
    journey: Number(match[2]),
    ...(match[3] ? { round: Number(match[3]) } : {}),
    value: match[4] ?? "",
  };
}

export function transition(conversation: Conversation, event: Event, ctx: Context): Result {
  const t = new Turn(conversation, ctx);
  if (event.type === "message") return t.message(event);
  return t.downstream(event);
}

/** One step's working state: the conversation as it changes and the effects gathered so far. */
class Turn {
  c: Conversation;
  readonly ctx: Context;
  readonly effects: Effect[] = [];

  constructor(conversation: Conversation, ctx: Context) {
    this.c = conversation;
    this.ctx = ctx;
  }

  done(outcome: Outcome): Result {
    return { conversation: this.c, effects: this.effects, outcome };
  }

  t(key: MessageKey, params: Record<string, string> = {}): string {
    return render(this.ctx.messages, this.c.language, key, params);
  }

  send(message: Outgoing): void {
    this.effects.push({ type: "send", message });
  }

  say(key: MessageKey, params: Record<string, string> = {}): void {
    this.send({ kind: "text", text: this.t(key, params) });
  }

  name(options: Option[], id: string | undefined): string {
    const option = options.find((o) => o.id === id);
    return option?.name[this.c.language] ?? option?.name[this.ctx.shop.language] ?? id ?? "";
  }

  // --- prompts: what each state asks, sent on entering it and when re-prompting -------------

  prompt(): void {
    const c = this.c;
    switch (c.state) {
      case "new":
      case "cancelled":
      case "awaiting_recipient":
        this.say("askRecipientAgain");
        return;
      case "awaiting_theme":
        this.optionList("askTheme", "themeButton", "theme", this.ctx.shop.themes);
        return;
      case "awaiting_style":
        this.optionList("askStyle", "styleButton", "style", this.ctx.shop.styles);
        return;
      case "ready":
        this.send({
          kind: "buttons",
          body: this.t("confirm", {
            theme: this.name(this.ctx.shop.themes, c.theme),
            style: this.name(this.ctx.shop.styles, c.style),
            recipient: c.recipient ?? "",
            product: this.ctx.shop.product.name[c.language] ?? this.ctx.shop.product.id,
          }),
          buttons: [{ id: replyId("gen", c, "go", c.round + 1), title: this.t("generateButton") }],
        });
        return;
      case "generating":
        this.say("stillGenerating");
        return;
      case "choosing":
        this.chooseList();
        return;
      case "awaiting_payment":
        if (c.order?.link) this.payButton();
        else this.say("preparingCheckout");
        return;
      case "paid":
        this.say("alreadyPaid", { orderNumber: c.order?.number ?? "" });
        return;
      case "resuming":
        this.send({
          kind: "buttons",
          body: this.t("welcomeBack"),
          buttons: [
            { id: replyId("resume", c, "continue"), title: this.t("continueButton") },
            { id: replyId("resume", c, "restart"), title: this.t("restartButton") },
          ],
        });
        return;
    }
  }

  optionList(body: MessageKey, button: MessageKey, step: string, options: Option[]): void {
    const c = this.c;
    this.send({
      kind: "list",
      body: this.t(body, { recipient: c.recipient ?? "", theme: this.name(this.ctx.shop.themes, c.theme) }),
      button: this.t(button),
      rows: options.map((o) => ({ id: replyId(step, c, o.id), title: o.name[c.language] ?? o.id })),
    });
  }

  chooseList(): void {
    const c = this.c;
    const rows = c.designs.map((d, i) => ({
      id: replyId("pick", c, d.id, c.round),
      title: this.t("designRow", { n: String(i + 1) }),
    }));
    if (c.completedRounds < this.ctx.shop.maxRounds)
      rows.push({ id: replyId("more", c, "more", c.round), title: this.t("moreRow") });
    this.send({ kind: "list", body: this.t("choose"), button: this.t("chooseButton"), rows });
  }

  payButton(): void {
    const c = this.c;
    const index = c.designs.findIndex((d) => d.id === c.order?.designId);
    const { price, currency } = { price: this.ctx.shop.product.price, currency: this.ctx.shop.currency };
    this.send({
      kind: "cta",
      body: this.t("pay", {
        product: this.ctx.shop.product.name[c.language] ?? this.ctx.shop.product.id,
        n: String(index + 1),
        price: contracts.formatPrice(price, currency, c.language),
      }),
      displayText: this.t("payButton"),
      url: c.order?.link ?? "",
    });
  }

  // --- moves -------------------------------------------------------------------------------

  enter(state: State, patch: Partial<Conversation> = {}): void {
    this.c = { ...this.c, ...patch, state };
    this.prompt();
  }

  /**
   * A new journey. An order awaiting payment stays open: the shopper may want both gifts, and a
   * payment of its link is confirmed like any other (see PAYMENT_TABLE).
   */
  restart(): void {
    this.cancelRoundTimer();
    const { language, shopId, lastActivityAt, orderCount } = this.c;
    this.c = {
      state: "awaiting_recipient",
      language,
      shopId,
      journey: this.c.journey + 1,
      round: 0,
      completedRounds: 0,
      designs: [],
      ...(lastActivityAt === undefined ? {} : { lastActivityAt }),
      ...(orderCount === undefined ? {} : { orderCount }),
    };
    this.say("greetingAnonymous");
  }

  startRound(): Outcome {
    const c = this.c;
    if (c.completedRounds >= this.ctx.shop.maxRounds) {
      this.say("noMoreRounds");
      this.prompt();
      return "reprompted";
    }
    const round = c.round + 1;
    this.c = { ...c, state: "generating", round };
    const roundId = roundIdOf(this.ctx, this.c);
    this.effects.push({
      type: "request_generation",
      roundId,
      recipient: c.recipient ?? "",
      theme: c.theme ?? "",
      style: c.style ?? "",
      productId: this.ctx.shop.product.id,
      count: this.ctx.shop.designsPerRound,
    });
    this.effects.push({
      type: "schedule_timer",
      timerId: timerIdOf(roundId),
      roundId,
      at: this.ctx.now + this.ctx.generationDeadlineMs,
    });
    this.say("generating");
    return "advanced";
  }

  cancelRoundTimer(): void {
    if (this.c.state === "generating")
      this.effects.push({ type: "cancel_timer", timerId: timerIdOf(roundIdOf(this.ctx, this.c)) });
  }

  choose(designId: string): Outcome {
    const c = this.c;
    const design = c.designs.find((d) => d.id === designId);
    if (!design) {
      this.prompt();
      return "reprompted";
    }
    const orderId = nextOrderIdOf(this.ctx, c);
    this.effects.push({
      type: "request_payment",
      orderId,
      designId: design.id,
      imageId: design.imageId,
      productId: this.ctx.shop.product.id,
      // The catalog's price, never anything the shopper sent.
      amount: this.ctx.shop.product.price,
      currency: this.ctx.shop.currency,
    });
    this.c = {
      ...c,
      state: "awaiting_payment",
      order: { id: orderId, designId: design.id },
      orderCount: (c.orderCount ?? 0) + 1,
    };
    this.say("preparingCheckout");
    return "advanced";
  }

  /**
   * Another design while an order awaits payment: that order is cancelled (its checkout closed, so
   * its link cannot be paid; should a payment land all the same, it is kept and confirmed) and a new
   * one replaces it. The same design again: the same order and link, never a second one.
   */
  rechoose(designId: string | undefined): Outcome {
    const open = this.c.order;
    if (
      !open ||
      designId === undefined ||
      designId === open.designId ||
      !this.c.designs.some((d) => d.id === designId)
    ) {
      this.prompt();
      return "reprompted";
    }
    this.effects.push({ type: "cancel_order", orderId: open.id, reason: "replaced" });
    const { order: _replaced, ...rest } = this.c;
    this.c = { ...rest, state: "choosing" };
    return this.choose(designId);
  }

  // --- events ------------------------------------------------------------------------------

  message(event: Extract<Event, { type: "message" }>): Result {
    // A notice from WhatsApp (a number change, a new identity key): nothing the shopper said, so
    // no reply and no activity. The consumer follows a number change (the shopper's identity).
    if (event.input.kind === "other" && event.input.type.startsWith("system.")) return this.done("ignored");
    const before = this.c;
    const idle = before.lastActivityAt === undefined ? 0 : event.at - before.lastActivityAt;
    this.c = { ...before, lastActivityAt: Math.max(event.at, before.lastActivityAt ?? 0) };
    const input = event.input;
    const text = input.kind === "text" ? input.text : undefined;
    const command = text === undefined ? undefined : commandOf(this.ctx.messages, this.c.language, text);
    const reply = input.kind === "reply" ? parseReplyId(input.id) : undefined;

    if (command === "help") {
      this.say("help");
      this.prompt();
      return this.done("command");
    }
    // "Start over" is a button of the resuming prompt only: an old one, tapped later, is stale.
    if (
      command === "restart" ||
      (reply?.step === "resume" && reply.value === "restart" && this.answersCurrentPrompt(reply))
    ) {
      this.restart();
      return this.done("command");
    }
    if (command === "cancel" && this.c.state === "paid") {
      // Nothing open to cancel: the order is paid (a refund is the shop's to give).
      this.prompt();
      return this.done("command");
    }
    if (command === "cancel" && this.c.state !== "new" && this.c.state !== "cancelled") {
      this.cancelRoundTimer();
      const open = this.c.state === "awaiting_payment" ? this.c.order : undefined;
      if (open) this.effects.push({ type: "cancel_order", orderId: open.id, reason: "shopper" });
      const { order: _cancelled, ...rest } = this.c;
      this.c = { ...rest, state: "cancelled" };
      this.say(open ? "orderCancelled" : "cancelled");
      return this.done("command");
    }

    const state = this.c.state;
    if (state === "new" || state === "cancelled") {
      if (state === "cancelled")
        this.c = {
          ...initialConversation(this.ctx.shop),
          journey: this.c.journey + 1,
          lastActivityAt: event.at,
          ...(this.c.orderCount === undefined ? {} : { orderCount: this.c.orderCount }),
        };
      this.c = { ...this.c, state: "awaiting_recipient" };
      this.say(event.shopperName ? "greeting" : "greetingAnonymous", { shopper: event.shopperName });
      return this.done("advanced");
    }
    // Back after a long silence in the middle of a journey: ask before carrying on.
    const midJourney = state !== "paid" && state !== "resuming" && state !== "generating";
    if (midJourney && idle > this.ctx.sessionTtlMs) {
      this.enter("resuming", { resumeState: state });
      return this.done("advanced");
    }
    // A tap on a button of another journey, step or round: recognised, not applied.
    if (reply && !this.answersCurrentPrompt(reply)) {
      this.say("stale");
      this.prompt();
      return this.done("stale");
    }

    switch (state) {
      case "awaiting_recipient": {
        const name = text === undefined ? undefined : cleanName(text);
        if (!name) return this.reprompt(input);
        this.enter("awaiting_theme", { recipient: name });
        return this.done("advanced");
      }
      case "awaiting_theme":
      case "awaiting_style": {
        const options = state === "awaiting_theme" ? this.ctx.shop.themes : this.ctx.shop.styles;
        const picked = reply
          ? options.find((o) => o.id === reply.value)
          : text === undefined
            ? undefined
            : matchOption(options, text, this.c.language);
        if (!picked) return this.reprompt(input);
        if (state === "awaiting_theme") this.enter("awaiting_style", { theme: picked.id });
        else this.enter("ready", { style: picked.id });
        return this.done("advanced");
      }
      case "ready":
        if (reply?.step === "gen" || command === "generate") return this.done(this.startRound());
        return this.reprompt(input);
      case "generating":
        // The generating state is the lock: whatever arrives, one round is already on its way.
        this.say("stillGenerating");
        return this.done("reprompted");
      case "choosing": {
        if (reply?.step === "more" || command === "more") return this.done(this.startRound());
        const n = text === undefined ? Number.NaN : Number(text.trim());
        const byNumber = Number.isInteger(n) ? this.c.designs[n - 1] : undefined;
        const designId = reply?.step === "pick" ? reply.value : byNumber?.id;
        if (designId === undefined) return this.reprompt(input);
        return this.done(this.choose(designId));
      }
      case "awaiting_payment": {
        const n = text === undefined ? Number.NaN : Number(text.trim());
        const byNumber = Number.isInteger(n) ? this.c.designs[n - 1] : undefined;
        return this.done(this.rechoose(reply?.step === "pick" ? reply.value : byNumber?.id));
      }
      case "paid":
        this.prompt();
        return this.done("reprompted");
      case "resuming":
        if ((reply?.step === "resume" && reply.value === "continue") || command === "continue") {
          this.enter(this.c.resumeState ?? "awaiting_recipient");
          return this.done("advanced");
        }
        return this.reprompt(input);
    }
  }

  reprompt(input: Input): Result {
    if (input.kind === "media" || input.kind === "other") this.say("textOnly");
    this.prompt();
    return this.done("reprompted");
  }

  /** Whether a tap answers the prompt the conversation is showing now. */
  answersCurrentPrompt(reply: { step: string; journey: number; round?: number }): boolean {
    const c = this.c;
    if (reply.journey !== c.journey) return false;
    switch (reply.step) {
      case "theme":
        return c.state === "awaiting_theme";
      case "style":
        return c.state === "awaiting_style";
      case "gen":
        // The button of the round about to start; a second tap finds the round started (generating).
        return (
          (c.state === "ready" && reply.round === c.round + 1) ||
          (c.state === "generating" && reply.round === c.round)
        );
      case "pick":
      case "more":
        return (
          (c.state === "choosing" || c.state === "awaiting_payment" || c.state === "generating") &&
          reply.round === c.round
        );
      case "resume":
        return c.state === "resuming";
      default:
        return false;
    }
  }

  downstream(event: Exclude<Event, { type: "message" }>): Result {
    const c = this.c;
    const currentRound =
      c.state === "generating" && "roundId" in event && event.roundId === roundIdOf(this.ctx, c);
    switch (event.type) {
      case "generation_completed": {
        if (!currentRound || event.designs.length === 0) return this.done("ignored");
        this.effects.push({ type: "cancel_timer", timerId: timerIdOf(event.roundId) });
        this.c = { ...c, state: "choosing", designs: event.designs, completedRounds: c.completedRounds + 1 };
        for (const [i, d] of event.designs.entries()) {
          this.send({
            kind: "image",
            imageId: d.imageId,
            caption: this.t("designCaption", { n: String(i + 1) }),
          });
        }
        this.chooseList();
        return this.done("advanced");
      }
      case "generation_failed":
      case "generation_deadline":
      case "generation_rejected": {
        if (!currentRound) return this.done("ignored");
        if (event.type !== "generation_deadline")
          this.effects.push({ type: "cancel_timer", timerId: timerIdOf(event.roundId) });
        // Back to the safe state before generating; the round id stays, so a late result is ignored.
        this.c = { ...c, state: c.completedRounds > 0 ? "choosing" : "ready" };
        if (event.type === "generation_rejected") {
          this.say("rateLimited", { minutes: String(Math.max(1, Math.ceil(event.retryAfterMs / 60_000))) });
          this.prompt();
        } else if (this.c.state === "ready") {
          this.send({
            kind: "buttons",
            body: this.t(failureMessage(event)),
            buttons: [{ id: replyId("gen", this.c, "go", this.c.round + 1), title: this.t("retryButton") }],
          });
        } else {
          this.say(failureMessage(event));
          this.prompt();
        }
        return this.done("advanced");
      }
      case "payment_link":
      case "payment_succeeded":
      case "payment_failed":
      case "payment_expired":
      case "payment_refunded":
        return this.payment(event);
      case "delivery_failed":
        // WhatsApp refused one of our messages (e.g. the 24-hour window closed). Nothing to send
        // that would fare better; the next message from the shopper reopens the window.
        return this.done("ignored");
    }
  }

  /** A payment event, as PAYMENT_TABLE says for this state and whether it is about the current order. */
  payment(event: PaymentEvent): Result {
    const c = this.c;
    const current = c.order !== undefined && event.orderId === c.order.id;
    switch (paymentAction(c.state, event.type, current)) {
      case "ignore":
        return this.done("ignored");
      case "show_link": {
        if (event.type !== "payment_link" || !c.order || c.order.link === event.url)
          return this.done("ignored");
        this.c = { ...c, order: { ...c.order, number: event.orderNumber, link: event.url } };
        this.payButton();
        return this.done("advanced");
      }
      case "paid":
        this.c = {
          ...c,
          state: "paid",
          ...(c.order ? { order: { ...c.order, number: event.orderNumber } } : {}),
        };
        this.say("paid", { orderNumber: event.orderNumber });
        return this.done("advanced");
      case "confirm_paid":
        this.say("paidOther", { orderNumber: event.orderNumber });
        return this.done("notified");
      case "choose_again": {
        const { order: _dropped, ...rest } = c;
        this.c = { ...rest, state: "choosing" };
        this.say(event.type === "payment_failed" ? "paymentFailed" : "paymentExpired");
        this.chooseList();
        return this.done("advanced");
      }
      case "tell_refund": {
        if (event.type !== "payment_refunded") return this.done("ignored");
        this.say(event.reason === "cancelled_before_payment" ? "refundedCancelled" : "refundedByShop", {
          orderNumber: event.orderNumber,
          price: contracts.formatPrice(event.amount, event.currency, c.language),
        });
        return this.done("notified");
      }
    }
  }
}

/**
 * A recipient's name, whitespace collapsed, if it fits the limit generation works with (counted in
 * characters as a person counts them, not UTF-16 units); a longer answer is asked again, never cut.
 */
function cleanName(text: string): string | undefined {
  const name = text.replace(/\s+/g, " ").trim();
  const length = [...name].length;
  return length > 0 && length <= contracts.RECIPIENT_NAME_MAX_LENGTH ? name : undefined;
}

/**
 * What a payment event does. `current`: for an event about the conversation's current order, by
 * state; anything not listed there, and every event about another order (replaced, cancelled, or
 * left open by a restart), does `otherwise`. A successful payment is never ignored: the shopper
 * paid, so they are told, whatever the state (the payment service refunds an order the shopper
 * cancelled before paying, and says so with `payment_refunded`).
 */
export type PaymentAction = "show_link" | "paid" | "confirm_paid" | "choose_again" | "tell_refund" | "ignore";

export const PAYMENT_TABLE: Record<
  PaymentEvent["type"],
  { current: Partial<Record<State, PaymentAction>>; otherwise: PaymentAction }
> = {
  // A link is only worth sending while its order awaits payment; others are late or replaced.
  payment_link: { current: { awaiting_payment: "show_link" }, otherwise: "ignore" },
  // Paid twice is one confirmation: the event id deduplicates redeliveries, `paid` a restatement.
  payment_succeeded: { current: { awaiting_payment: "paid", paid: "ignore" }, otherwise: "confirm_paid" },
  // The shopper chooses again; a closed checkout of another order changes nothing.
  payment_failed: { current: { awaiting_payment: "choose_again" }, otherwise: "ignore" },
  payment_expired: { current: { awaiting_payment: "choose_again" }, otherwise: "ignore" },
  payment_refunded: { current: {}, otherwise: "tell_refund" },
};

export function paymentAction(state: State, type: PaymentEvent["type"], current: boolean): PaymentAction {
  const row = PAYMENT_TABLE[type];
  return (current ? row.current[state] : undefined) ?? row.otherwise;
}

/** The journey funnel step a transition completes, for the funnel metric. */
export function funnelStep(from: State, to: State): string | undefined {
  if (from === to) return undefined;
  const steps: Partial<Record<State, string>> = {
    awaiting_recipient: "started",
    awaiting_theme: "named",
    awaiting_style: "themed",
    ready: "styled",
    choosing: "generated",
    awaiting_payment: "chosen",
    paid: "paid",
  };
  if (to === "choosing" && from !== "generating") return undefined;
  if (to === "ready" && from !== "awaiting_style") return undefined;
  return steps[to];
}

/**
 * What to tell the shopper about a failed round. The generation service's reason starts with a code
 * ("content_policy: …"); the ones the shopper can act on get their own message in their language.
 */
function failureMessage(event: { type: string; reason?: string }): MessageKey {
  const code = event.type === "generation_failed" ? (event.reason ?? "").split(":")[0]?.trim() : "";
  if (code === "content_policy") return "generationRefused";
  if (code === "limiter_unavailable") return "generationUnavailable";
  return "generationFailed";
}

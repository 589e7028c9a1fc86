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
  order?: { id: string; designId: string; link?: string };
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
  | { type: "payment_link"; orderId: string; url: string }
  | { type: "payment_succeeded"; orderId: string }
  | { type: "payment_failed"; orderId: string; reason: string }
  | { type: "payment_expired"; orderId: string }
  | { type: "delivery_failed"; outboundId: string; reason: string };

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
  | { type: "schedule_timer"; timerId: string; roundId: string; at: number }
  | { type: "cancel_timer"; timerId: string };

/**
 * advanced: the journey moved. reprompted: no transition; the shopper is asked again. stale: a tap
 * on a button of an earlier step or round, recognised and not applied. ignored: a late or foreign
 * downstream event (a result for an abandoned round, a second confirmation), counted. command:
 * help, restart or cancel.
 */
export type Outcome = "advanced" | "reprompted" | "stale" | "ignored" | "command";

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

/** Longest recipient name we accept: long enough for any real name, short enough to print on a gift. */
const MAX_NAME_LENGTH = 60;

/** Ids of the current round and order: derived, so a replay of the same step yields the same ids. */
export const roundIdOf = (ctx: Context, c: Conversation, round = c.round) =>
  `${ctx.conversationId}/j${c.journey}/r${round}`;
export const orderIdOf = (ctx: Context, c: Conversation, designId: string) =>
  `${roundIdOf(ctx, c)}/${designId}`;
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
        this.say("alreadyPaid", { orderId: c.order?.id ?? "" });
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
        price: formatPrice(price, currency, c.language),
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

  restart(): void {
    this.cancelRoundTimer();
    const { language, shopId, lastActivityAt } = this.c;
    this.c = {
      state: "awaiting_recipient",
      language,
      shopId,
      journey: this.c.journey + 1,
      round: 0,
      completedRounds: 0,
      designs: [],
      ...(lastActivityAt === undefined ? {} : { lastActivityAt }),
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
    const orderId = orderIdOf(this.ctx, c, design.id);
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
    this.c = { ...c, state: "awaiting_payment", order: { id: orderId, designId: design.id } };
    this.say("preparingCheckout");
    return "advanced";
  }

  // --- events ------------------------------------------------------------------------------

  message(event: Extract<Event, { type: "message" }>): Result {
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
    if (
      command === "restart" ||
      (reply?.step === "resume" && reply.value === "restart" && reply.journey === this.c.journey)
    ) {
      this.restart();
      return this.done("command");
    }
    if (command === "cancel" && this.c.state !== "new" && this.c.state !== "cancelled") {
      this.cancelRoundTimer();
      this.c = { ...this.c, state: "cancelled" };
      this.say("cancelled");
      return this.done("command");
    }

    const state = this.c.state;
    if (state === "new" || state === "cancelled") {
      if (state === "cancelled")
        this.c = {
          ...initialConversation(this.ctx.shop),
          journey: this.c.journey + 1,
          lastActivityAt: event.at,
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
      case "awaiting_payment":
        // "Buy" again: the same order and the same link, never a second one.
        this.prompt();
        return this.done("reprompted");
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
    const currentOrder = c.order !== undefined && "orderId" in event && event.orderId === c.order.id;
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
      case "payment_link": {
        if (!currentOrder || c.state !== "awaiting_payment" || c.order?.link === event.url)
          return this.done("ignored");
        this.c = { ...c, order: { ...(c.order as NonNullable<Conversation["order"]>), link: event.url } };
        this.payButton();
        return this.done("advanced");
      }
      case "payment_succeeded": {
        if (!currentOrder || c.state !== "awaiting_payment") return this.done("ignored");
        this.c = { ...c, state: "paid" };
        this.say("paid", { orderId: c.order?.id ?? "" });
        return this.done("advanced");
      }
      case "payment_failed":
      case "payment_expired": {
        if (!currentOrder || c.state !== "awaiting_payment") return this.done("ignored");
        const { order: _dropped, ...rest } = c;
        this.c = { ...rest, state: "choosing" };
        this.say(event.type === "payment_failed" ? "paymentFailed" : "paymentExpired");
        this.chooseList();
        return this.done("advanced");
      }
      case "delivery_failed":
        // WhatsApp refused one of our messages (e.g. the 24-hour window closed). Nothing to send
        // that would fare better; the next message from the shopper reopens the window.
        return this.done("ignored");
    }
  }
}

function cleanName(text: string): string | undefined {
  const name = text.replace(/\s+/g, " ").trim();
  return name.length > 0 && name.length <= MAX_NAME_LENGTH ? name : undefined;
}

function formatPrice(minor: number, currency: string, language: string): string {
  return new Intl.NumberFormat(language, { style: "currency", currency }).format(minor / 100);
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

import { contracts } from "@taituri/proto";
import { matchOption, normalize, type Option, type PickupLocation, type Shop } from "./catalog.ts";
import { type Countries, countryName, matchCountry, validPostcode } from "./countries.ts";
import {
  type Command,
  commandOf,
  isCommand,
  type MessageCatalog,
  type MessageKey,
  render,
} from "./messages.ts";

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
  /** A design chosen; pickup or an address? (only for shops with pickup points) */
  | "awaiting_delivery_method"
  /** Asking one field of the address (`asking`). */
  | "awaiting_address"
  /** Asking the pickup point or who collects (`asking`). */
  | "awaiting_pickup"
  /** The delivery details are showing, with "Confirm" and "Change". */
  | "confirming_delivery"
  /** Which detail to change? */
  | "changing_delivery"
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
  "awaiting_delivery_method",
  "awaiting_address",
  "awaiting_pickup",
  "confirming_delivery",
  "changing_delivery",
  "awaiting_payment",
  "paid",
  "resuming",
  "cancelled",
];

/** The states that collect where the gift goes, between choosing a design and paying for it. */
export const DELIVERY_STATES: ReadonlySet<State> = new Set([
  "awaiting_delivery_method",
  "awaiting_address",
  "awaiting_pickup",
  "confirming_delivery",
  "changing_delivery",
]);

export interface Design {
  id: string;
  imageId: string;
}

/** One detail of where the gift goes, asked for on its own. */
export type DeliveryField = "country" | "name" | "street" | "city" | "postcode" | "location";

/**
 * Where the gift goes, as far as the shopper has said. Personal data: never logged nor put in a
 * span; a restart or a cancel clears it, and so does the payment (the order holds it then).
 */
export interface DeliveryDraft {
  method?: "address" | "pickup";
  /** ISO 3166-1 alpha-2. */
  country?: string;
  /** Who the parcel is addressed to, or who collects it. */
  name?: string;
  line1?: string;
  line2?: string;
  city?: string;
  /** Normalised as the country writes it. */
  postcode?: string;
  locationId?: string;
}

/** A delivery as the shopper confirmed it: complete, and valid for the shop (payment.v1.Delivery). */
export type Delivery =
  | {
      method: "address";
      name: string;
      line1: string;
      line2?: string;
      city: string;
      postcode: string;
      country: string;
    }
  | { method: "pickup"; locationId: string; name: string };

/**
 * How long each answer may be, in characters as a person counts them. A longer answer is asked
 * again, never cut: the parcel label carries it as written.
 */
export const DELIVERY_LIMITS = { nameMin: 2, nameMax: 70, line: 100, city: 60 } as const;

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
  /** The design chosen, while the delivery is asked for; confirming it orders this design. */
  chosenDesignId?: string;
  delivery?: DeliveryDraft;
  /** The field awaiting_address or awaiting_pickup asks for. */
  asking?: DeliveryField;
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
  | { type: "payment_shipped"; orderId: string; orderNumber: string; trackingUrl?: string }
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
      /** The conversation's recipient: the name the design was made for. */
      recipient: string;
      delivery: Delivery;
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
  /** Every country a shop may ship to (the shop's `delivery.countries` are among them). */
  countries: Countries;
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
      case "awaiting_delivery_method":
        this.send({
          kind: "buttons",
          body: this.t("askDeliveryMethod"),
          buttons: [
            { id: replyId("delivery", c, "address"), title: this.t("addressButton") },
            { id: replyId("delivery", c, "pickup"), title: this.t("pickupButton") },
          ],
        });
        return;
      case "awaiting_address":
      case "awaiting_pickup":
        this.askField(c.asking ?? (c.state === "awaiting_pickup" ? "location" : "name"));
        return;
      case "confirming_delivery":
        this.send({
          kind: "buttons",
          body: this.deliverySummary(),
          buttons: [
            { id: replyId("addr", c, "ok"), title: this.t("confirmButton") },
            { id: replyId("addr", c, "change"), title: this.t("changeButton") },
          ],
        });
        return;
      case "changing_delivery":
        this.send({
          kind: "list",
          body: this.t("askChange"),
          button: this.t("changeListButton"),
          rows: this.changeRows().map(({ value, title }) => ({ id: replyId("change", c, value), title })),
        });
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

  askField(field: DeliveryField): void {
    const c = this.c;
    const shop = this.ctx.shop;
    switch (field) {
      case "country":
        this.send({
          kind: "list",
          body: this.t("askCountry"),
          button: this.t("countryButton"),
          rows: shop.delivery.countries.map((code) => ({
            id: replyId("country", c, code),
            title: countryName(this.ctx.countries, code, c.language),
          })),
        });
        return;
      case "name":
        this.say(c.delivery?.method === "pickup" ? "askPickupName" : "askAddressName");
        return;
      case "street":
        this.say("askStreet");
        return;
      case "city":
        this.say("askCity");
        return;
      case "postcode":
        this.say("askPostcode", { example: this.ctx.countries[c.delivery?.country ?? ""]?.example ?? "" });
        return;
      case "location":
        this.send({
          kind: "list",
          body: this.t("askPickup"),
          button: this.t("pickupListButton"),
          rows: (shop.delivery.pickup ?? []).map((p) => ({
            id: replyId("pickup", c, p.id),
            title: this.locationName(p),
            description: p.address,
          })),
        });
        return;
    }
  }

  locationName(location: PickupLocation): string {
    return location.name[this.c.language] ?? location.name[this.ctx.shop.language] ?? location.id;
  }

  /** The delivery details as the shopper is asked to confirm them. */
  deliverySummary(): string {
    const d = this.c.delivery ?? {};
    if (d.method === "pickup") {
      const location = this.ctx.shop.delivery.pickup?.find((p) => p.id === d.locationId);
      return this.t("confirmPickup", {
        location: location ? this.locationName(location) : "",
        address: location?.address ?? "",
        name: d.name ?? "",
      });
    }
    return this.t("confirmAddress", {
      name: d.name ?? "",
      street: [d.line1 ?? "", ...(d.line2 ? [d.line2] : [])].join("\n"),
      postcode: d.postcode ?? "",
      city: d.city ?? "",
      country: countryName(this.ctx.countries, d.country ?? "", this.c.language),
    });
  }

  /** What the shopper may change, as offered in changing_delivery: the details of the method chosen. */
  changeRows(): { value: DeliveryField | "method" | "keep"; title: string }[] {
    const delivery = this.ctx.shop.delivery;
    const pickupOffered = (delivery.pickup?.length ?? 0) > 0;
    const fields: { value: DeliveryField | "method" | "keep"; key: MessageKey }[] =
      this.c.delivery?.method === "pickup"
        ? [
            ...((delivery.pickup?.length ?? 0) > 1
              ? [{ value: "location" as const, key: "fieldLocation" as const }]
              : []),
            { value: "name", key: "fieldName" },
          ]
        : [
            { value: "name", key: "fieldName" },
            { value: "street", key: "fieldStreet" },
            { value: "city", key: "fieldCity" },
            { value: "postcode", key: "fieldPostcode" },
            ...(delivery.countries.length > 1
              ? [{ value: "country" as const, key: "fieldCountry" as const }]
              : []),
          ];
    return [
      ...fields,
      ...(pickupOffered ? [{ value: "method" as const, key: "fieldMethod" as const }] : []),
      { value: "keep" as const, key: "keepRow" as const },
    ].map(({ value, key }) => ({ value, title: this.t(key) }));
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
    // A delivery draft is kept: the design chosen from the new round goes to the same place.
    const { chosenDesignId: _chosen, asking: _asking, ...rest } = c;
    this.c = { ...rest, state: "generating", round };
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

  /** A design chosen from the list: where the gift goes is asked next (or shown, if known). */
  choose(designId: string): Outcome {
    if (!this.c.designs.some((d) => d.id === designId)) {
      this.prompt();
      return "reprompted";
    }
    this.c = { ...this.c, chosenDesignId: designId };
    this.advanceDelivery();
    return "advanced";
  }

  /**
   * Asks for the next delivery detail still missing, in order (the method; for an address the
   * country, name, street, city and postcode; for pickup the point and who collects), or shows them
   * all for confirmation. What the shop settles alone is filled in: its only country, its only
   * pickup point, an address when it has no pickup. A detail the shop no longer allows (a country
   * it stopped shipping to, a postcode that does not fit the country) counts as missing.
   */
  advanceDelivery(): void {
    const delivery = settle(this.ctx, this.c.delivery ?? {});
    const { asking: _asking, ...rest } = this.c;
    this.c = { ...rest, delivery };
    const next = nextDeliveryStep(delivery);
    if (next.field) this.enter(next.state, { asking: next.field });
    else this.enter(next.state);
  }

  /**
   * The order: the chosen design, sent where the shopper confirmed, at the catalog's price. A
   * detail found missing (the catalog changed since) is asked for instead.
   */
  requestPayment(designId: string): Outcome {
    const c = this.c;
    const design = c.designs.find((d) => d.id === designId);
    const delivery = confirmable(this.ctx, c.delivery);
    if (!design || !delivery) {
      if (design) this.advanceDelivery();
      else this.enter("choosing");
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
      recipient: c.recipient ?? "",
      delivery,
    });
    const { chosenDesignId: _chosen, asking: _asking, ...rest } = c;
    this.c = {
      ...rest,
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
   * one replaces it, sent where the shopper confirmed for the first. The same design again: the same
   * order and link, never a second one.
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
    if (confirmable(this.ctx, this.c.delivery)) return this.requestPayment(designId);
    // An order made before delivery details were asked for: they are asked now.
    return this.choose(designId);
  }

  /** A tap on another design of the round while the delivery is asked for: that one is chosen. */
  switchDesign(designId: string): Outcome {
    const c = this.c;
    const index = c.designs.findIndex((d) => d.id === designId);
    if (index < 0 || designId === c.chosenDesignId) {
      this.prompt();
      return "reprompted";
    }
    this.c = { ...c, chosenDesignId: designId };
    this.say("designChanged", { n: String(index + 1) });
    this.prompt();
    return "advanced";
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
      const {
        order: _cancelled,
        delivery: _personal,
        chosenDesignId: _chosen,
        asking: _asking,
        ...rest
      } = this.c;
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
      case "awaiting_delivery_method":
      case "awaiting_address":
      case "awaiting_pickup":
      case "confirming_delivery":
      case "changing_delivery":
        // The round's list is still on screen: another design is chosen instead, or a new round
        // starts; what the shopper said of the delivery is kept.
        if (reply?.step === "more") return this.done(this.startRound());
        if (reply?.step === "pick") return this.done(this.switchDesign(reply.value));
        return this.answerDelivery(state, input, reply);
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

  /** An answer at one of the delivery steps. */
  answerDelivery(state: State, input: Input, reply: { step: string; value: string } | undefined): Result {
    const text = input.kind === "text" ? input.text : undefined;
    if (text === undefined && !reply) return this.reprompt(input);
    const says = (command: Command) => text !== undefined && this.is(text, command);
    switch (state) {
      case "awaiting_delivery_method": {
        const method = reply
          ? reply.value
          : says("address")
            ? "address"
            : says("pickup")
              ? "pickup"
              : undefined;
        if (method !== "address" && method !== "pickup") return this.again("askDeliveryMethodAgain");
        this.c = { ...this.c, delivery: { ...this.c.delivery, method } };
        this.advanceDelivery();
        return this.done("advanced");
      }
      case "confirming_delivery":
        if (reply ? reply.value === "ok" : says("confirm"))
          return this.done(this.requestPayment(this.c.chosenDesignId ?? ""));
        if (reply ? reply.value === "change" : says("change")) {
          this.enter("changing_delivery");
          return this.done("advanced");
        }
        return this.again("confirmDeliveryAgain");
      case "changing_delivery": {
        const rows = this.changeRows();
        const row = reply
          ? rows.find((r) => r.value === reply.value)
          : rows.find((r) => normalize(r.title) === normalize(text ?? "") || says(r.value));
        if (!row) return this.again("askChangeAgain");
        if (row.value === "keep") this.enter("confirming_delivery");
        else if (row.value === "method") this.enter("awaiting_delivery_method");
        else
          this.enter(this.c.delivery?.method === "pickup" ? "awaiting_pickup" : "awaiting_address", {
            asking: row.value,
          });
        return this.done("advanced");
      }
      default:
        return this.answerField(this.c.asking, text, reply);
    }
  }

  /**
   * The shopper's answer to the field being asked. A valid one is kept (the other details stay as
   * they are) and the next step follows; anything else is asked again, saying what is wanted.
   */
  answerField(
    field: DeliveryField | undefined,
    text: string | undefined,
    reply: { value: string } | undefined,
  ): Result {
    const { shop, countries } = this.ctx;
    const draft = this.c.delivery ?? {};
    let patch: DeliveryDraft = {};
    switch (field) {
      case "country": {
        const codes = shop.delivery.countries;
        const code = reply
          ? codes.find((c) => c === reply.value)
          : matchCountry(countries, codes, text ?? "");
        if (!code) {
          const elsewhere =
            text === undefined ? undefined : matchCountry(countries, Object.keys(countries), text);
          if (elsewhere) {
            this.say("countryNotServed", { country: countryName(countries, elsewhere, this.c.language) });
            this.prompt();
            return this.done("reprompted");
          }
          return this.again("askCountryAgain");
        }
        patch = { country: code };
        break;
      }
      case "location": {
        const locations = shop.delivery.pickup ?? [];
        const said = normalize(text ?? "");
        const location = reply
          ? locations.find((p) => p.id === reply.value)
          : locations.find((p) => [p.id, ...Object.values(p.name)].some((n) => normalize(n) === said));
        if (!location) return this.again("askPickupAgain");
        patch = { locationId: location.id };
        break;
      }
      case "name": {
        const name = text === undefined ? undefined : personName(text);
        if (!name)
          return this.again("askNameAgain", false, {
            min: String(DELIVERY_LIMITS.nameMin),
            max: String(DELIVERY_LIMITS.nameMax),
          });
        patch = { name };
        break;
      }
      case "street": {
        const lines = text === undefined ? undefined : streetLines(text);
        if (!lines) return this.again("askStreetAgain", false, { max: String(DELIVERY_LIMITS.line) });
        patch = lines;
        break;
      }
      case "city": {
        const city = text === undefined ? undefined : oneLine(text, DELIVERY_LIMITS.city);
        if (!city || !/\p{L}/u.test(city))
          return this.again("askCityAgain", false, { max: String(DELIVERY_LIMITS.city) });
        patch = { city };
        break;
      }
      case "postcode": {
        const country = countries[draft.country ?? ""];
        // Without a country (the shop stopped shipping to it) the country is asked for first.
        if (!country) break;
        const postcode = text === undefined ? undefined : validPostcode(country, text);
        if (!postcode) {
          this.say("postcodeInvalid", {
            country: countryName(countries, draft.country ?? "", this.c.language),
            example: country.example,
          });
          return this.done("reprompted");
        }
        patch = { postcode };
        break;
      }
      case undefined:
        break;
    }
    // The street is both its lines: a new one without a second line has none.
    const { line2: _line2, ...kept } = draft;
    this.c = { ...this.c, delivery: { ...(field === "street" ? kept : draft), ...patch } };
    this.advanceDelivery();
    return this.done("advanced");
  }

  /** The shopper is told what is wanted, and (for a choice) shown the choices again. */
  again(key: MessageKey, showPrompt = true, params: Record<string, string> = {}): Result {
    this.say(key, params);
    if (showPrompt) this.prompt();
    return this.done("reprompted");
  }

  is(text: string, command: Command): boolean {
    return isCommand(this.ctx.messages, this.c.language, text, command);
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
          (c.state === "choosing" ||
            c.state === "awaiting_payment" ||
            c.state === "generating" ||
            DELIVERY_STATES.has(c.state)) &&
          reply.round === c.round
        );
      case "delivery":
        return c.state === "awaiting_delivery_method";
      case "country":
        return c.state === "awaiting_address" && c.asking === "country";
      case "pickup":
        return c.state === "awaiting_pickup" && c.asking === "location";
      case "addr":
        return c.state === "confirming_delivery";
      case "change":
        return c.state === "changing_delivery";
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
      case "payment_shipped":
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
      case "paid": {
        // The order holds the delivery now: the conversation keeps no copy of it.
        const { delivery: _ordered, chosenDesignId: _chosen, asking: _asking, ...rest } = c;
        this.c = {
          ...rest,
          state: "paid",
          ...(c.order ? { order: { ...c.order, number: event.orderNumber } } : {}),
        };
        this.say("paid", { orderNumber: event.orderNumber });
        return this.done("advanced");
      }
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
      case "tell_shipped": {
        if (event.type !== "payment_shipped") return this.done("ignored");
        const lines = [this.t("shipped", { orderNumber: event.orderNumber })];
        if (event.trackingUrl) lines.push(this.t("shippedTracking", { url: event.trackingUrl }));
        this.send({ kind: "text", text: lines.join("\n") });
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
export type PaymentAction =
  | "show_link"
  | "paid"
  | "confirm_paid"
  | "choose_again"
  | "tell_refund"
  | "tell_shipped"
  | "ignore";

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
  // The shop sent a paid order: good news whatever the journey is doing now (one per order, the
  // event id says).
  payment_shipped: { current: {}, otherwise: "tell_shipped" },
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
    awaiting_payment: "addressed",
    paid: "paid",
  };
  // A design chosen: the delivery step begins.
  if (from === "choosing" && DELIVERY_STATES.has(to)) return "chosen";
  if (to === "awaiting_payment" && from !== "confirming_delivery") return undefined;
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

/**
 * The draft with what the shop settles alone filled in (its only country, its only pickup point, an
 * address when it has no pickup), and what it no longer allows taken out: a country it does not
 * ship to, a pickup point it does not have, a postcode that does not fit the country.
 */
function settle(ctx: Context, draft: DeliveryDraft): DeliveryDraft {
  const { countries: shipsTo, pickup = [] } = ctx.shop.delivery;
  const { method, country, postcode, locationId, ...rest } = draft;
  const settled: DeliveryDraft = { ...rest };
  if (method && (method === "address" || pickup.length > 0)) settled.method = method;
  else if (pickup.length === 0) settled.method = "address";
  const where =
    country && shipsTo.includes(country) ? country : shipsTo.length === 1 ? shipsTo[0] : undefined;
  if (where) settled.country = where;
  const shape = where ? ctx.countries[where] : undefined;
  const fits = postcode && shape ? validPostcode(shape, postcode) : undefined;
  if (fits) settled.postcode = fits;
  const point =
    locationId && pickup.some((p) => p.id === locationId)
      ? locationId
      : pickup.length === 1
        ? pickup[0]?.id
        : undefined;
  if (point) settled.locationId = point;
  return settled;
}

/** The step that asks for the first detail still missing from a settled draft, or the confirmation. */
function nextDeliveryStep(d: DeliveryDraft): { state: State; field?: DeliveryField } {
  if (!d.method) return { state: "awaiting_delivery_method" };
  if (d.method === "pickup") {
    if (!d.locationId) return { state: "awaiting_pickup", field: "location" };
    if (!d.name) return { state: "awaiting_pickup", field: "name" };
    return { state: "confirming_delivery" };
  }
  const missing = (
    [
      ["country", d.country],
      ["name", d.name],
      ["street", d.line1],
      ["city", d.city],
      ["postcode", d.postcode],
    ] as const
  ).find(([, value]) => !value);
  return missing ? { state: "awaiting_address", field: missing[0] } : { state: "confirming_delivery" };
}

/** The delivery a draft describes, if it is complete and valid for the shop as it is now. */
function confirmable(ctx: Context, draft: DeliveryDraft | undefined): Delivery | undefined {
  if (!draft) return undefined;
  const d = settle(ctx, draft);
  if (nextDeliveryStep(d).state !== "confirming_delivery") return undefined;
  if (d.method === "pickup")
    return d.locationId && d.name ? { method: "pickup", locationId: d.locationId, name: d.name } : undefined;
  if (!d.name || !d.line1 || !d.city || !d.postcode || !d.country) return undefined;
  return {
    method: "address",
    name: d.name,
    line1: d.line1,
    ...(d.line2 ? { line2: d.line2 } : {}),
    city: d.city,
    postcode: d.postcode,
    country: d.country,
  };
}

/** Text on one line, whitespace collapsed, if it has `min` to `max` characters as a person counts them. */
function oneLine(text: string, max: number, min = 1): string | undefined {
  const line = text.replace(/\s+/g, " ").trim();
  const length = [...line].length;
  return length >= min && length <= max ? line : undefined;
}

/** A person's name for a parcel: a letter at least, within DELIVERY_LIMITS. */
function personName(text: string): string | undefined {
  const name = oneLine(text, DELIVERY_LIMITS.nameMax, DELIVERY_LIMITS.nameMin);
  return name && /\p{L}/u.test(name) ? name : undefined;
}

/** The street and number, and a second line (flat, floor) when the message has one; no more. */
function streetLines(text: string): { line1: string; line2?: string } | undefined {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
  const [first, second] = lines.map((line) => oneLine(line, DELIVERY_LIMITS.line));
  if (lines.length === 0 || lines.length > 2 || !first || (lines.length === 2 && !second)) return undefined;
  if (!/[\p{L}\p{N}]/u.test(first)) return undefined;
  return second ? { line1: first, line2: second } : { line1: first };
}

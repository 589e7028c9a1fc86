import assert from "node:assert/strict";
import { eventually, type FakeGraphApi, type RecordedRequest, recipientOf } from "@taituri/testing/harness";
import { messageWebhook, signWebhook } from "@taituri/testing/whatsapp";

/** What the shopper reads of one message the bot sent. */
export interface Read {
  type: string;
  /** The text, caption or body; a CTA's text ends with its URL in brackets. */
  text: string;
  /** The ids of the buttons or list rows the shopper could tap. */
  ids: string[];
  /** A CTA's URL. */
  url?: string;
  /** An image's uploaded media id. */
  mediaId?: string;
}

export function readMessage(r: RecordedRequest): Read {
  // biome-ignore lint/suspicious/noExplicitAny: a Graph API body of any message type, read loosely.
  const b = r.body as Record<string, any>;
  if (b.type === "text") return { type: "text", text: b.text.body, ids: [] };
  if (b.type === "image")
    return {
      type: "image",
      text: b.image.caption ?? "",
      ids: [],
      ...(b.image.id ? { mediaId: b.image.id } : {}),
    };
  if (b.type === "interactive") {
    const i = b.interactive;
    const ids =
      i.type === "button"
        ? i.action.buttons.map((x: { reply: { id: string } }) => x.reply.id)
        : i.type === "list"
          ? i.action.sections.flatMap((s: { rows: { id: string }[] }) => s.rows.map((row) => row.id))
          : [];
    if (i.type === "cta_url") {
      const url = String(i.action.parameters.url);
      return { type: i.type, text: `${i.body.text} (${url})`, ids, url };
    }
    return { type: i.type, text: i.body.text, ids };
  }
  return { type: String(b.type), text: JSON.stringify(b), ids: [] };
}

/** Where a gift goes, as a shopper types it in the address step. */
export interface Address {
  country: string;
  name: string;
  street: string;
  city: string;
  postcode: string;
}

/** Where test shoppers send their gifts unless a test says otherwise. */
export const ADDRESS: Address = {
  country: "ES",
  name: "Ana López",
  street: "Calle Mayor 1",
  city: "Madrid",
  postcode: "28013",
};

export interface ShopperOptions {
  /** The shopper's phone number (wa_id). */
  waId?: string;
  /**
   * The shopper's business-scoped user id (BSUID, e.g. "US.13491208655302741918"). With no waId,
   * a shopper who shows Meta no phone number. At least one of the two.
   */
  userId?: string;
  phoneNumberId: string;
  /** The ingress webhook's URL (asked at each send: the service may start after the shopper). */
  webhook: () => string;
  secret: string;
  graph: FakeGraphApi;
  /** Makes message ids unique across runs: `wamid.<prefix>.<shopper key>.<n>`. */
  wamidPrefix: string;
  /** How long `next` waits for the bot. */
  timeoutMs?: number;
  /** The WhatsApp profile name the webhooks carry; "Ana" by default. */
  profileName?: string;
}

/**
 * One shopper on WhatsApp: sends signed webhooks to ingress as Meta would, and reads what the bot
 * sent back at the fake Graph API, in order. A shopper has a phone number, a BSUID or both, and
 * the webhooks name them as Meta does; `hidePhone` sends the next ones without the phone number,
 * as Meta does for a shopper who adopted a username.
 */
export class Shopper {
  /** Leave the phone number out of the next webhooks (only for a shopper who also has a BSUID). */
  hidePhone = false;
  /** The `timestamp` of the next message (seconds); move it to play a shopper back hours later. */
  clock = Math.floor(Date.now() / 1000);
  readonly #options: ShopperOptions;
  #waId: string;
  #userId: string;
  /** Every id the shopper has had: what the bot sent to any of them is theirs. */
  readonly #ids = new Set<string>();
  /** Names the shopper in message ids, fixed at the start so wamid(n) stays the same. */
  readonly #wamidKey: string;
  #seq = 0;
  #seen = 0;

  constructor(options: ShopperOptions) {
    if (!options.waId && !options.userId) throw new Error("a shopper needs a waId, a userId or both");
    this.#options = options;
    this.#waId = options.waId ?? "";
    this.#userId = options.userId ?? "";
    this.#wamidKey = this.#userId || this.#waId;
    for (const id of [this.#waId, this.#userId]) if (id) this.#ids.add(id);
  }

  /** The phone number; "" for a shopper known only by BSUID. */
  get waId(): string {
    return this.#waId;
  }

  /** The BSUID; "" for a shopper from before BSUIDs. */
  get userId(): string {
    return this.#userId;
  }

  /**
   * "<phone_number_id>:<shopper key>", the key rule of ingress: the BSUID when the shopper has
   * one (it is in every webhook, with or without the phone number), else the phone number. After
   * changeNumber, the key of the new identity: the one its webhooks arrive under.
   */
  get conversationId(): string {
    return `${this.#options.phoneNumberId}:${this.userId || this.waId}`;
  }

  /** The id the shopper's n-th message gets (1-based). */
  wamid(n: number): string {
    return `wamid.${this.#options.wamidPrefix}.${this.#wamidKey}.${n}`;
  }

  /** The ids the next webhook names the shopper by, as Meta would. */
  #identity(): { waId?: string; userId?: string } {
    if (this.hidePhone && !this.userId)
      throw new Error("only a shopper with a BSUID can hide the phone number");
    return {
      ...(this.waId && !this.hidePhone ? { waId: this.waId } : {}),
      ...(this.userId ? { userId: this.userId } : {}),
    };
  }

  async send(part: Record<string, unknown>): Promise<string> {
    this.#seq += 1;
    return this.#post(
      messageWebhook(part, {
        ...this.#identity(),
        phoneNumberId: this.#options.phoneNumberId,
        wamid: this.wamid(this.#seq),
        timestamp: this.clock,
        profileName: this.#options.profileName ?? "Ana",
      }),
    );
  }

  async #post(json: unknown): Promise<string> {
    const body = JSON.stringify(json);
    const response = await fetch(this.#options.webhook(), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-hub-signature-256": signWebhook(body, this.#options.secret),
      },
      body,
    });
    assert.equal(response.status, 200);
    return body;
  }

  say = (text: string) => this.send({ type: "text", text: { body: text } });
  tap = (id: string) =>
    this.send({
      type: "interactive",
      interactive: { type: "button_reply", button_reply: { id, title: id } },
    });
  voice = () =>
    this.send({ type: "audio", audio: { id: "VOICE1", mime_type: "audio/ogg; codecs=opus", voice: true } });

  /**
   * The shopper changes phone number, as Meta reports it: a `user_changed_number` system message
   * from the old identity (no contacts), with the new number in `system.wa_id` and, for a shopper
   * with a BSUID, the new BSUID in `system.user_id` (a number change gives a new one). The
   * shopper's later webhooks come from the new identity; what the bot sends to the old ids still
   * counts as theirs.
   */
  async changeNumber(waId: string, userId = ""): Promise<string> {
    this.#seq += 1;
    const json = messageWebhook(
      {
        type: "system",
        system: {
          body: `User ${this.#options.profileName ?? "Ana"} changed from ${this.waId} to ${waId}`,
          wa_id: waId,
          ...(userId ? { user_id: userId } : {}),
          type: "user_changed_number",
        },
      },
      {
        ...this.#identity(),
        phoneNumberId: this.#options.phoneNumberId,
        wamid: this.wamid(this.#seq),
        timestamp: this.clock,
      },
    );
    // Unlike other message webhooks, Meta's system messages carry no contacts.
    const value: { contacts?: unknown } | undefined = json.entry[0]?.changes[0]?.value;
    delete value?.contacts;
    const body = await this.#post(json);
    this.#waId = waId;
    this.#userId = userId;
    for (const id of [waId, userId]) if (id) this.#ids.add(id);
    return body;
  }

  /** Every send-message request to this shopper (by `to` or `recipient`), refused ones included. */
  requests = (): RecordedRequest[] =>
    this.#options.graph.sends().filter((r) => this.#ids.has(recipientOf(r.body) ?? ""));

  all = (): Read[] =>
    this.requests()
      .filter((r) => r.status === 200)
      .map(readMessage);

  /** Waits for the bot's next `n` messages and returns them. */
  async next(n = 1): Promise<Read[]> {
    const from = this.#seen;
    const got = await eventually(
      `${n} more message(s) to ${this.userId || this.waId}`,
      () => this.all().length >= from + n && this.all(),
      this.#options.timeoutMs ?? 20_000,
    );
    this.#seen = from + n;
    return got.slice(from, from + n);
  }

  /**
   * From hello to the confirmation: the first message and recipient ("I want a gift", "Rosa" unless
   * given), the birthday theme and `style`; returns it.
   */
  async toConfirmation(
    style = "watercolor",
    words: { hello?: string; recipient?: string } = {},
  ): Promise<Read | undefined> {
    await this.say(words.hello ?? "I want a gift");
    await this.next();
    await this.say(words.recipient ?? "Rosa");
    const [themes] = await this.next();
    await this.tap(themes?.ids.find((id) => id.endsWith(":birthday")) ?? "");
    const [styles] = await this.next();
    await this.tap(styles?.ids.find((id) => id.endsWith(`:${style}`)) ?? "");
    const [confirm] = await this.next();
    return confirm;
  }

  /** Through the confirmation to the round's three designs and the list to choose from (all four). */
  async toDesigns(style = "watercolor"): Promise<Read[]> {
    const confirm = await this.toConfirmation(style);
    await this.tap(confirm?.ids[0] ?? "");
    assert.match((await this.next())[0]?.text ?? "", /Creating your designs/);
    return this.next(4);
  }

  /**
   * After choosing a design: answers the demo shop's address step (country from the list, addressee,
   * street, city, postcode) and taps Confirm; returns the confirmation that was tapped.
   */
  async giveAddress(address: Address = ADDRESS): Promise<Read | undefined> {
    const [countries] = await this.next();
    await this.tap(countries?.ids.find((id) => id.endsWith(`:${address.country}`)) ?? "");
    for (const answer of [address.name, address.street, address.city, address.postcode]) {
      await this.next();
      await this.say(answer);
    }
    const [confirm] = await this.next();
    assert.match(confirm?.text ?? "", /Please check where the gift goes/);
    await this.tap(confirm?.ids.find((id) => id.startsWith("addr:") && id.endsWith(":ok")) ?? "");
    return confirm;
  }

  /** Asserts nothing more arrives for a moment. */
  async quiet(ms = 1500): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    assert.equal(
      this.all().length,
      this.#seen,
      `unexpected: ${JSON.stringify(this.all().slice(this.#seen))}`,
    );
  }
}

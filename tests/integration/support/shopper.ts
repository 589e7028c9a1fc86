import assert from "node:assert/strict";
import { eventually, type FakeGraphApi, type RecordedRequest } from "@taituri/testing/harness";
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

export interface ShopperOptions {
  waId: string;
  phoneNumberId: string;
  /** The ingress webhook's URL (asked at each send: the service may start after the shopper). */
  webhook: () => string;
  secret: string;
  graph: FakeGraphApi;
  /** Makes message ids unique across runs: `wamid.<prefix>.<waId>.<n>`. */
  wamidPrefix: string;
  /** How long `next` waits for the bot. */
  timeoutMs?: number;
  /** The WhatsApp profile name the webhooks carry; "Ana" by default. */
  profileName?: string;
}

/**
 * One shopper on WhatsApp: sends signed webhooks to ingress as Meta would, and reads what the bot
 * sent back at the fake Graph API, in order.
 */
export class Shopper {
  readonly waId: string;
  readonly conversationId: string;
  /** The `timestamp` of the next message (seconds); move it to play a shopper back hours later. */
  clock = Math.floor(Date.now() / 1000);
  readonly #options: ShopperOptions;
  #seq = 0;
  #seen = 0;

  constructor(options: ShopperOptions) {
    this.#options = options;
    this.waId = options.waId;
    this.conversationId = `${options.phoneNumberId}:${options.waId}`;
  }

  /** The id the shopper's n-th message gets (1-based). */
  wamid(n: number): string {
    return `wamid.${this.#options.wamidPrefix}.${this.waId}.${n}`;
  }

  async send(part: Record<string, unknown>): Promise<string> {
    this.#seq += 1;
    const body = JSON.stringify(
      messageWebhook(part, {
        waId: this.waId,
        phoneNumberId: this.#options.phoneNumberId,
        wamid: this.wamid(this.#seq),
        timestamp: this.clock,
        profileName: this.#options.profileName ?? "Ana",
      }),
    );
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

  all = (): Read[] =>
    this.#options.graph
      .sends()
      .filter((r) => (r.body as { to?: string }).to === this.waId && r.status === 200)
      .map(readMessage);

  /** Waits for the bot's next `n` messages and returns them. */
  async next(n = 1): Promise<Read[]> {
    const from = this.#seen;
    const got = await eventually(
      `${n} more message(s) to ${this.waId}`,
      () => this.all().length >= from + n && this.all(),
      this.#options.timeoutMs ?? 20_000,
    );
    this.#seen = from + n;
    return got.slice(from, from + n);
  }

  /** From hello to the confirmation: recipient "Rosa", the birthday theme and `style`; returns it. */
  async toConfirmation(style = "watercolor"): Promise<Read | undefined> {
    await this.say("I want a gift");
    await this.next();
    await this.say("Rosa");
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

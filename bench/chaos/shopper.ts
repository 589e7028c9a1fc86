/**
 * A chaos shopper: one WhatsApp user going from hello to a paid order, as Meta would deliver it
 * (signed webhooks, re-sent until answered 200, and here also 2–3 times on purpose), reading the
 * bot's replies from the recording Graph API. It records what it sent and what it saw; it never
 * asks a service how things went.
 */
import type { FakeGraphApi, RecordedRequest } from "@taituri/testing/harness";
import { recipientOf } from "@taituri/testing/harness";
import { messageWebhook, signWebhook, statusWebhook } from "@taituri/testing/whatsapp";

/** What the shopper reads of one message the bot sent. */
export interface Read {
  type: string;
  text: string;
  ids: string[];
  url?: string;
}

export function readMessage(body: unknown): Read {
  // biome-ignore lint/suspicious/noExplicitAny: a Graph API body of any message type, read loosely.
  const b = body as Record<string, any>;
  if (b.type === "text") return { type: "text", text: String(b.text?.body ?? ""), ids: [] };
  if (b.type === "image") return { type: "image", text: String(b.image?.caption ?? ""), ids: [] };
  if (b.type === "interactive") {
    const i = b.interactive;
    const ids: string[] =
      i.type === "button"
        ? i.action.buttons.map((x: { reply: { id: string } }) => x.reply.id)
        : i.type === "list"
          ? i.action.sections.flatMap((s: { rows: { id: string }[] }) => s.rows.map((row) => row.id))
          : [];
    const url = i.type === "cta_url" ? String(i.action.parameters.url) : undefined;
    return { type: String(i.type), text: String(i.body?.text ?? ""), ids, ...(url ? { url } : {}) };
  }
  return { type: String(b.type), text: JSON.stringify(b), ids: [] };
}

/**
 * What makes two sends the same logical reply: recipient, type, text and choices. An image's media
 * id is left out (a re-sent image is uploaded again under a new id). No two replies of one journey
 * are alike, so a second copy is a duplicate.
 */
export const replyKey = (recipient: string, r: Read) =>
  JSON.stringify([recipient, r.type, r.text, r.ids, r.url ?? ""]);

/** Every send to one recipient, grouped once per scan of the Graph API's record. */
export class Mailboxes {
  #scanned = 0;
  readonly #by = new Map<string, { at: number; read: Read }[]>();
  readonly #graph: FakeGraphApi;
  constructor(graph: FakeGraphApi) {
    this.#graph = graph;
  }

  of(recipient: string): { at: number; read: Read }[] {
    const sends = this.#graph.requests;
    for (; this.#scanned < sends.length; this.#scanned += 1) {
      const r = sends[this.#scanned] as RecordedRequest;
      if (r.method !== "POST" || !/\/messages$/.test(r.path) || r.status !== 200) continue;
      const to = recipientOf(r.body);
      if (!to) continue;
      const list = this.#by.get(to) ?? [];
      list.push({ at: r.at, read: readMessage(r.body) });
      this.#by.set(to, list);
    }
    return this.#by.get(recipient) ?? [];
  }

  recipients(): string[] {
    this.of("");
    return [...this.#by.keys()];
  }
}

export interface Inbound {
  wamid: string;
  step: string;
  sentAt: number;
  /** When the first reply after it was seen; undefined: none came. */
  answeredAt?: number;
  /** Whether a fault window was open when it was sent. */
  duringFault: boolean;
}

export interface ShopperOptions {
  index: number;
  /** Phone number, BSUID, or both (a shopper with a BSUID is addressed by it). */
  waId?: string;
  userId?: string;
  webhookUrl: () => string;
  mail: Mailboxes;
  /** Copies of each webhook after the first, as delays from it. */
  deliveries: () => number[];
  thinkMs: () => number;
  /** How long to wait for one reply before the shopper gives up (recorded as stuck). */
  replyTimeoutMs: number;
  wamidPrefix: string;
  choose: () => number;
  faultOpen: () => boolean;
  /** Late copies in flight: the run waits for them before checking. */
  pending: Set<Promise<unknown>>;
}

export class StuckError extends Error {}

/** Posts a signed webhook until it is answered 200, as Meta does (its backoff compressed to seconds). */
export async function postWebhook(
  url: string,
  body: string,
  signature: string,
  deadline: number,
  onRefused: () => void,
): Promise<void> {
  for (let wait = 250; ; wait = Math.min(wait * 2, 4_000)) {
    const status = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": signature },
      body,
      signal: AbortSignal.timeout(10_000),
    }).then(
      async (r) => {
        await r.arrayBuffer();
        return r.status;
      },
      () => 0,
    );
    if (status === 200) return;
    onRefused();
    if (Date.now() > deadline)
      throw new StuckError(`webhook never accepted (last answer ${status || "none"})`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/**
 * Meta's "sent" status webhook for a send the Graph API took, signed: the recipient as the send
 * named it, and the send's biz_opaque_callback_data echoed, as Meta does. That echo is how ingress
 * learns of a send whose sender was killed before it recorded it.
 */
export function sentStatus(
  send: unknown,
  wamid: string,
  secret: string,
): { body: string; signature: string } {
  const b = send as { to?: string; recipient?: string; biz_opaque_callback_data?: string };
  const body = JSON.stringify(
    statusWebhook(wamid, "sent", {
      ...(b.to ? { waId: b.to } : { userId: b.recipient ?? "" }),
      phoneNumberId: "PNCHAOS",
      timestamp: Math.floor(Date.now() / 1000),
      ...(b.biz_opaque_callback_data !== undefined ? { callbackData: b.biz_opaque_callback_data } : {}),
    }),
  );
  return { body, signature: signWebhook(body, secret) };
}

export class ChaosShopper {
  readonly inbound: Inbound[] = [];
  /** Replies seen, duplicates left out, in arrival order. */
  readonly seen: Read[] = [];
  /** Where the journey stopped, if it did not reach the paid confirmation. */
  stuck?: { step: string; waited: string };
  checkoutUrl?: string;
  orderNumber?: string;
  /** Answers to POST <checkout>/pay: a 200 is a charge at the provider. */
  readonly payAnswers: number[] = [];
  /** The title of the page each press was answered with ("" when there was no answer). */
  readonly payPages: string[] = [];
  deliveriesRefused = 0;
  /** Rounds the shopper had to start again after being told the designs failed. */
  roundsRetried = 0;
  /** Replies the shopper asked for again (the same text after "Try again"): how many times each. */
  readonly again: Record<string, number> = {};
  #seq = 0;
  #cursor = 0;
  #read = 0;
  readonly #keys = new Set<string>();

  readonly o: ShopperOptions;
  constructor(options: ShopperOptions) {
    this.o = options;
  }

  get recipient(): string {
    return this.o.userId || this.o.waId || "";
  }

  get bsuidOnly(): boolean {
    return !this.o.waId;
  }

  /** Posts one copy until it is answered 200, as Meta does (its backoff compressed to seconds). */
  #post(body: string, signature: string, deadline: number): Promise<void> {
    return postWebhook(this.o.webhookUrl(), body, signature, deadline, () => {
      this.deliveriesRefused += 1;
    });
  }

  async send(step: string, part: Record<string, unknown>, secret: string): Promise<void> {
    this.#seq += 1;
    const wamid = `wamid.${this.o.wamidPrefix}.${this.o.index}.${this.#seq}`;
    const body = JSON.stringify(
      messageWebhook(part, {
        ...(this.o.waId ? { waId: this.o.waId } : {}),
        ...(this.o.userId ? { userId: this.o.userId } : {}),
        phoneNumberId: "PNCHAOS",
        wamid,
        timestamp: Math.floor(Date.now() / 1000),
        profileName: "Chaos",
      }),
    );
    const signature = signWebhook(body, secret);
    this.inbound.push({ wamid, step, sentAt: Date.now(), duringFault: this.o.faultOpen() });
    const deadline = Date.now() + this.o.replyTimeoutMs;
    // The first delivery is the one the shopper waits on; the others are Meta's extra copies.
    const later = this.o.deliveries().slice(1);
    const copies = later.map((delay) => {
      const copy = (async () => {
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        // A copy Meta would keep re-sending too; given up on quietly at its own deadline.
        await this.#post(body, signature, Date.now() + this.o.replyTimeoutMs).catch(() => {});
      })();
      this.o.pending.add(copy);
      void copy.finally(() => this.o.pending.delete(copy));
      return delay === 0 ? copy : undefined;
    });
    await Promise.all([this.#post(body, signature, deadline), ...copies.filter(Boolean)]);
  }

  /** Waits for `n` more replies (duplicates not counted) and returns them. */
  async next(waited: string, n = 1): Promise<Read[]> {
    const deadline = Date.now() + this.o.replyTimeoutMs;
    const last = this.inbound.at(-1);
    for (;;) {
      const mail = this.o.mail.of(this.recipient);
      for (; this.#cursor < mail.length; this.#cursor += 1) {
        const { read, at } = mail[this.#cursor] as { at: number; read: Read };
        const key = replyKey(this.recipient, read);
        if (this.#keys.has(key)) continue;
        this.#keys.add(key);
        this.seen.push(read);
        if (last && last.answeredAt === undefined) last.answeredAt = at;
      }
      if (this.seen.length >= this.#read + n) {
        const got = this.seen.slice(this.#read, this.#read + n);
        this.#read += n;
        return got;
      }
      if (Date.now() > deadline) throw new StuckError(`waited for ${waited}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The shopper asks for this reply again (a retried round): its next copy is not a duplicate. */
  expectAgain(read: Read): void {
    const key = replyKey(this.recipient, read);
    this.#keys.delete(key);
    this.again[key] = (this.again[key] ?? 0) + 1;
  }

  async think(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, this.o.thinkMs()));
  }
}

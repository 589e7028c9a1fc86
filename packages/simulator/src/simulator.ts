import { randomInt } from "node:crypto";
import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@taituri/logging";
import { Throughput, type ThroughputOptions } from "./limits.ts";
import { type MetaError, MetaErrors } from "./meta-errors.ts";
import { type Sample, sampleImage, sampleSticker, sampleVoice } from "./samples.ts";
import { BSUID, parseSendMessage } from "./send-message.ts";
import type { BusinessNumber, ChatMessage, LogKind, LogLine, Shopper, Toggles } from "./types.ts";
import {
  type Attempt,
  deliverWebhook,
  type Identity,
  type InboundMessage,
  messageWebhook,
  newTraceId,
  newWamid,
  sha256Base64,
  statusWebhook,
} from "./webhooks.ts";

/** WhatsApp's customer service window: free-form messages only this long after the shopper last wrote. */
const SERVICE_WINDOW_MS = 24 * 3600 * 1000;
const LOG_LINES = 200;

export interface SimulatorCoreOptions {
  webhookUrl: string;
  appSecret: string;
  businessNumbers: BusinessNumber[];
  retrySchedule: readonly number[];
  webhookTimeoutMs: number;
  /** Trace links: Jaeger's UI (`/trace/<id>`) when `ui`, its query API (`/api/traces/<id>`) otherwise. */
  jaeger?: { url: string; ui: boolean };
  /** Templates Meta files as authentication templates: not deliverable to a BSUID (131062). */
  authenticationTemplates: readonly string[];
  throughput?: ThroughputOptions;
  /** The pauses between a send and its statuses (sent, delivered, read), in ms. */
  statusDelaysMs: { sent: number; delivered: number; read: number };
  logger?: Logger;
}

/** Bytes the simulator serves: the bot's uploads and the shopper's samples. */
export interface Media {
  id: string;
  bytes: Buffer;
  mimeType: string;
  sha256: string;
}

interface ShopperState extends Shopper {
  /** When the shopper last wrote, on the simulated clock (ms): opens the 24-hour window. */
  lastInboundAt?: number;
}

/** What the shopper's side of the UI may send (the UI HTTP API's POST …/messages). */
export type ShopperInput =
  | { type: "text"; text: string }
  | { type: "voice" }
  | { type: "image" }
  | { type: "sticker" }
  | { type: "location"; latitude: number; longitude: number; name?: string }
  | { type: "button_reply"; replyTo: string; id: string; title: string }
  | { type: "list_reply"; replyTo: string; id: string; title: string; description?: string };

/** A mistake of the UI's caller: answered 400 (or 404) with the message. */
export class SimulatorInputError extends Error {
  override readonly name = "SimulatorInputError";
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

export type SimulatorEvent =
  | { event: "shopper"; data: Omit<Shopper, "messages"> }
  | { event: "message"; data: { shopperId: string; message: ChatMessage } }
  | { event: "log"; data: LogLine }
  | { event: "toggles"; data: Toggles }
  | { event: "clock"; data: { offsetMs: number } };

/**
 * Both sides of Meta, in memory: the shoppers and their chats, what goes to ingress (signed,
 * retried, duplicated on demand) and what the dispatcher's Graph API calls get (Meta's answers,
 * errors and statuses), with the failure toggles and a clock that can jump ahead.
 */
export class SimulatorCore {
  readonly options: SimulatorCoreOptions;
  readonly events = new EventEmitter<{ event: [SimulatorEvent] }>();
  readonly toggles: Toggles = {
    deliver: 1,
    concurrent: false,
    ackDelayMs: 0,
    image: "ok",
    rateLimit: false,
    windowClosed: false,
  };
  clockOffsetMs = 0;
  readonly #shoppers = new Map<string, ShopperState>();
  readonly #log: LogLine[] = [];
  readonly #media = new Map<string, Media>();
  /** The trace of each message the bot sent (from the dispatcher's traceparent): its statuses join it. */
  readonly #traces = new Map<string, string>();
  /** Each bot message's biz_opaque_callback_data, by wamid: Meta echoes it in the statuses. */
  readonly #callbackData = new Map<string, string>();
  readonly #throughput: Throughput;
  /** The shopper whose chat the UI shows: the bot's messages to them are read once delivered. */
  #openShopper: string | undefined;
  #sequence = 0;
  readonly #closing = new AbortController();
  readonly #pending = new Set<Promise<unknown>>();
  #samples: Promise<{ image: Sample; sticker: Sample; voice: Sample }> | undefined;

  constructor(options: SimulatorCoreOptions) {
    if (options.businessNumbers.length === 0)
      throw new Error("the simulator needs at least one business number");
    this.options = options;
    this.#throughput = new Throughput(options.throughput);
  }

  /** The simulated time: the real clock plus the jumps made. */
  now(): Date {
    return new Date(Date.now() + this.clockOffsetMs);
  }

  traceUrl(traceId: string): string | undefined {
    const jaeger = this.options.jaeger;
    if (!jaeger) return undefined;
    return jaeger.ui ? `${jaeger.url}/trace/${traceId}` : `${jaeger.url}/api/traces/${traceId}`;
  }

  #emit(event: SimulatorEvent): void {
    this.events.emit("event", event);
  }

  log(kind: LogKind, text: string, traceUrl?: string): void {
    const line: LogLine = { at: new Date().toISOString(), kind, text, ...(traceUrl ? { traceUrl } : {}) };
    this.#log.push(line);
    if (this.#log.length > LOG_LINES) this.#log.shift();
    this.options.logger?.info({ kind, ...(traceUrl ? { traceUrl } : {}) }, text);
    this.#emit({ event: "log", data: line });
  }

  state() {
    return {
      shoppers: [...this.#shoppers.values()].map((s) => this.#public(s)),
      businessNumbers: this.options.businessNumbers.map((b) => ({
        phoneNumberId: b.phoneNumberId,
        displayPhoneNumber: b.displayPhoneNumber,
        ...(b.name ? { name: b.name } : {}),
      })),
      toggles: { ...this.toggles },
      clockOffsetMs: this.clockOffsetMs,
      log: [...this.#log],
      ...(this.options.jaeger ? { jaeger: { ...this.options.jaeger } } : {}),
    };
  }

  #public(shopper: ShopperState): Shopper {
    const { lastInboundAt: _, ...rest } = shopper;
    return { ...rest, messages: [...shopper.messages] };
  }

  #header(shopper: ShopperState): Omit<Shopper, "messages"> {
    const { messages: _, lastInboundAt: __, ...header } = shopper;
    return header;
  }

  business(phoneNumberId: string): BusinessNumber | undefined {
    return this.options.businessNumbers.find((b) => b.phoneNumberId === phoneNumberId);
  }

  // --- Toggles and the clock -------------------------------------------------------------------

  setToggles(input: unknown): Toggles {
    if (typeof input !== "object" || input === null || Array.isArray(input))
      throw new SimulatorInputError("toggles: expected a JSON object");
    const next = { ...this.toggles };
    const changes: string[] = [];
    for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
      switch (key) {
        case "deliver":
          if (value !== 1 && value !== 2 && value !== 3)
            throw new SimulatorInputError("toggles.deliver: 1, 2 or 3");
          next.deliver = value;
          changes.push(`deliver each webhook ${value === 1 ? "once" : `${value} times`}`);
          break;
        case "concurrent":
        case "rateLimit":
        case "windowClosed":
          if (typeof value !== "boolean") throw new SimulatorInputError(`toggles.${key}: true or false`);
          next[key] = value;
          changes.push(
            {
              concurrent: value ? "duplicates sent concurrently" : "duplicates sent one after the other",
              rateLimit: value ? "rate limit exhausted: sends answered 130429" : "rate limit back to Meta's",
              windowClosed: value
                ? "24-hour window closed: free-form sends answered 131047"
                : "24-hour window follows the shoppers' messages",
            }[key],
          );
          break;
        case "ackDelayMs":
          if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 120_000)
            throw new SimulatorInputError("toggles.ackDelayMs: an integer from 0 to 120000");
          next.ackDelayMs = value;
          changes.push(value ? `Graph API answers after ${value} ms` : "Graph API answers at once");
          break;
        case "image":
          if (value !== "ok" && value !== "fail" && value !== "timeout")
            throw new SimulatorInputError("toggles.image: ok, fail or timeout");
          next.image = value;
          changes.push(IMAGE_TOGGLE[next.image]);
          break;
        default:
          throw new SimulatorInputError(`toggles: unknown toggle ${key}`);
      }
    }
    Object.assign(this.toggles, next);
    for (const change of changes) this.log("toggle", change);
    this.#emit({ event: "toggles", data: { ...this.toggles } });
    return { ...this.toggles };
  }

  jumpClock(ms: unknown): { offsetMs: number } {
    if (typeof ms !== "number" || !Number.isInteger(ms) || Math.abs(ms) > 30 * 24 * 3600 * 1000)
      throw new SimulatorInputError("clock jump: ms must be an integer within 30 days");
    this.clockOffsetMs += ms;
    this.log(
      "clock",
      `clock ${ms >= 0 ? "+" : "-"}${hours(Math.abs(ms))} (now ${hours(this.clockOffsetMs)} ahead)`,
    );
    this.#emit({ event: "clock", data: { offsetMs: this.clockOffsetMs } });
    return { offsetMs: this.clockOffsetMs };
  }

  // --- Media -----------------------------------------------------------------------------------

  storeMedia(bytes: Buffer, mimeType: string): Media {
    // Meta's media ids are long decimal numbers.
    let id: string;
    do
      id = `${randomInt(1, 10)}${String(randomInt(0, 1e8)).padStart(8, "0")}${String(randomInt(0, 1e7)).padStart(7, "0")}`;
    while (this.#media.has(id));
    const media = { id, bytes, mimeType, sha256: sha256Base64(bytes) };
    this.#media.set(id, media);
    return media;
  }

  media(id: string): Media | undefined {
    return this.#media.get(id);
  }

  deleteMedia(id: string): boolean {
    return this.#media.delete(id);
  }

  #sampleFiles() {
    this.#samples ??= sampleSticker().then((sticker) => ({
      image: sampleImage(),
      sticker,
      voice: sampleVoice(2),
    }));
    return this.#samples;
  }

  // --- Shoppers --------------------------------------------------------------------------------

  createShopper(input: unknown): Shopper {
    const o = asObject(input, "shopper");
    const name = typeof o.name === "string" ? o.name.trim() : "";
    if (!name || name.length > 60) throw new SimulatorInputError("shopper.name: 1 to 60 characters");
    const waId = optionalString(o.waId, "shopper.waId")?.replace(/^\+/, "");
    const userId = optionalString(o.userId, "shopper.userId");
    if (!waId && !userId)
      throw new SimulatorInputError("a shopper needs a phone number (waId) or a BSUID (userId)");
    if (waId && !/^\d{6,15}$/.test(waId))
      throw new SimulatorInputError("shopper.waId: a phone number in digits, with its country code");
    if (userId && !BSUID.test(userId))
      throw new SimulatorInputError(
        "shopper.userId: a BSUID, a country code, a dot and letters or digits (US.13491208655302741918)",
      );
    const phoneNumberId =
      optionalString(o.phoneNumberId, "shopper.phoneNumberId") ??
      this.options.businessNumbers[0]?.phoneNumberId ??
      "";
    if (!this.business(phoneNumberId))
      throw new SimulatorInputError(
        `shopper.phoneNumberId: ${phoneNumberId} is not one of the business numbers`,
      );
    const taken = [...this.#shoppers.values()].find(
      (s) =>
        s.phoneNumberId === phoneNumberId && ((waId && s.waId === waId) || (userId && s.userId === userId)),
    );
    if (taken) throw new SimulatorInputError(`shopper ${taken.name} already has this phone number or BSUID`);
    return this.#public(
      this.#addShopper({ name, phoneNumberId, ...(waId ? { waId } : {}), ...(userId ? { userId } : {}) }),
    );
  }

  #addShopper(who: Omit<ShopperState, "id" | "messages">): ShopperState {
    this.#sequence += 1;
    const shopper: ShopperState = { id: `s${this.#sequence}`, ...who, messages: [] };
    this.#shoppers.set(shopper.id, shopper);
    this.#emit({ event: "shopper", data: this.#header(shopper) });
    return shopper;
  }

  #shopper(id: string): ShopperState {
    const shopper = this.#shoppers.get(id);
    if (!shopper) throw new SimulatorInputError(`no shopper ${id}`, 404);
    return shopper;
  }

  #changed(shopper: ShopperState, message: ChatMessage): void {
    this.#emit({ event: "message", data: { shopperId: shopper.id, message: { ...message } } });
  }

  /** The shopper writes: the message joins the chat at once, and its webhook goes to ingress. */
  async sendFromShopper(shopperId: string, input: unknown): Promise<ChatMessage> {
    const shopper = this.#shopper(shopperId);
    const business = this.business(shopper.phoneNumberId);
    if (!business) throw new SimulatorInputError(`shopper ${shopperId} writes to an unknown number`);
    const o = asObject(input, "message");
    const at = this.now();
    const traceId = newTraceId();
    const wamid = newWamid();
    const traceUrl = this.traceUrl(traceId);
    const base = {
      id: wamid,
      from: "shopper" as const,
      at: at.toISOString(),
      status: "sending" as const,
      attempts: 0,
      ...(traceUrl ? { traceUrl } : {}),
    };
    let inbound: InboundMessage;
    let message: ChatMessage;
    switch (o.type) {
      case "text": {
        const text = typeof o.text === "string" ? o.text : "";
        if (!text.trim() || text.length > 4096) throw new SimulatorInputError("text: 1 to 4096 characters");
        inbound = { type: "text", text };
        message = { ...base, type: "text", text };
        break;
      }
      case "voice":
      case "image":
      case "sticker": {
        const samples = await this.#sampleFiles();
        const sample = o.type === "voice" ? samples.voice : samples[o.type];
        const media = this.storeMedia(sample.bytes, sample.mimeType);
        const file = { mediaId: media.id, mimeType: media.mimeType, sha256: media.sha256 };
        if (o.type === "voice") {
          inbound = { type: "audio", ...file, voice: true };
          message = { ...base, type: "audio", mediaUrl: `/sim/media/${media.id}` };
        } else {
          inbound = { type: o.type, ...file };
          message = { ...base, type: o.type, imageUrl: `/sim/media/${media.id}` };
        }
        break;
      }
      case "location": {
        const { latitude, longitude } = o;
        if (
          typeof latitude !== "number" ||
          typeof longitude !== "number" ||
          Math.abs(latitude) > 90 ||
          Math.abs(longitude) > 180
        )
          throw new SimulatorInputError("location: latitude (-90..90) and longitude (-180..180) as numbers");
        const name = optionalString(o.name, "location.name");
        inbound = { type: "location", latitude, longitude, ...(name ? { name } : {}) };
        message = { ...base, type: "location", location: { latitude, longitude, ...(name ? { name } : {}) } };
        break;
      }
      case "button_reply":
      case "list_reply": {
        const replyTo = optionalString(o.replyTo, `${o.type}.replyTo`) ?? "";
        const id = optionalString(o.id, `${o.type}.id`) ?? "";
        const title = optionalString(o.title, `${o.type}.title`) ?? "";
        const answered = shopper.messages.find((m) => m.id === replyTo && m.from === "bot");
        if (!answered)
          throw new SimulatorInputError(`${o.type}: ${replyTo} is not a message the bot sent this shopper`);
        const options =
          o.type === "button_reply"
            ? (answered.buttons ?? [])
            : (answered.list?.sections.flatMap((section) => section.rows) ?? []);
        const option = options.find((b) => b.id === id);
        if (!option) throw new SimulatorInputError(`${o.type}: message ${replyTo} offers no ${id}`);
        const description =
          "description" in option && typeof option.description === "string" ? option.description : undefined;
        if (o.type === "button_reply") {
          inbound = { type: "button_reply", replyTo, id, title: title || option.title };
        } else {
          inbound = {
            type: "list_reply",
            replyTo,
            id,
            title: title || option.title,
            ...(description ? { description } : {}),
          };
        }
        message = {
          ...base,
          type: o.type,
          text: title || option.title,
          replyTo,
          ...(o.type === "list_reply" && description ? { description } : {}),
        };
        break;
      }
      default:
        throw new SimulatorInputError(
          "message.type: text, voice, image, sticker, location, button_reply or list_reply",
        );
    }
    shopper.lastInboundAt = at.getTime();
    shopper.messages.push(message);
    this.#changed(shopper, message);
    const body = messageWebhook(business, identity(shopper), wamid, at, inbound);
    this.#track(
      this.#deliver(body, traceId, `${message.type} ${short(wamid)}`, (attempt) => {
        message.attempts = (message.attempts ?? 0) + 1;
        if (attempt.status === 200 && message.status !== "delivered") {
          message.status = "delivered";
          delete message.error;
        }
        this.#changed(shopper, message);
      }).then((delivered) => {
        if (!delivered && message.status !== "delivered") {
          message.status = "failed";
          message.error = "ingress did not acknowledge the webhook; Meta's retries ran out";
          this.#changed(shopper, message);
        }
      }),
    );
    return { ...message };
  }

  /** The UI shows this shopper's chat: what the bot sent them is read (read statuses go out). */
  markRead(shopperId: string): { read: number } {
    const shopper = this.#shopper(shopperId);
    this.#openShopper = shopper.id;
    let read = 0;
    for (const message of shopper.messages) {
      if (message.from !== "bot" || message.status !== "delivered") continue;
      read += 1;
      this.#track(this.#status(shopper, message, "read"));
    }
    return { read };
  }

  /**
   * Delivers a webhook to ingress as many times as the "deliver" toggle says, at once or one
   * after the other; true when at least one delivery was acknowledged.
   */
  async #deliver(
    body: unknown,
    traceId: string,
    what: string,
    onAttempt: (a: Attempt) => void,
  ): Promise<boolean> {
    const traceUrl = this.traceUrl(traceId);
    const copies = this.toggles.deliver;
    const one = async (copy: number) => {
      const label = copies > 1 ? `${what} (copy ${copy} of ${copies})` : what;
      const attempts = await deliverWebhook(body, {
        url: this.options.webhookUrl,
        appSecret: this.options.appSecret,
        retrySchedule: this.options.retrySchedule,
        timeoutMs: this.options.webhookTimeoutMs,
        traceId,
        signal: this.#closing.signal,
        onAttempt: (attempt) => {
          const answer =
            attempt.status === undefined ? (attempt.error ?? "no answer") : `HTTP ${attempt.status}`;
          const retry =
            attempt.status === 200
              ? ""
              : attempt.attempt <= this.options.retrySchedule.length
                ? "; will retry"
                : "; gave up";
          this.log(
            "webhook",
            `→ ingress ${label}, attempt ${attempt.attempt}: ${answer} in ${attempt.ms} ms${retry}`,
            traceUrl,
          );
          onAttempt(attempt);
        },
      });
      return attempts.at(-1)?.status === 200;
    };
    if (this.toggles.concurrent) {
      const results = await Promise.all(Array.from({ length: copies }, (_, i) => one(i + 1)));
      return results.some(Boolean);
    }
    let delivered = false;
    for (let copy = 1; copy <= copies; copy++) delivered = (await one(copy)) || delivered;
    return delivered;
  }

  #track(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) =>
      this.options.logger?.error({ err: error }, "simulator task failed"),
    );
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  async #status(
    shopper: ShopperState,
    message: ChatMessage,
    status: "sent" | "delivered" | "read",
  ): Promise<void> {
    const business = this.business(shopper.phoneNumberId);
    if (!business || this.#closing.signal.aborted) return;
    const rank = { sending: 0, sent: 1, delivered: 2, read: 3, failed: 4 } as const;
    if (rank[message.status ?? "sending"] >= rank[status]) return;
    message.status = status;
    this.#changed(shopper, message);
    const traceId = this.#traces.get(message.id) ?? newTraceId();
    const body = statusWebhook(
      business,
      identity(shopper),
      message.id,
      status,
      this.now(),
      conversationIdFor(shopper),
      this.#callbackData.get(message.id),
    );
    await this.#deliver(body, traceId, `status ${status} of ${short(message.id)}`, () => {});
  }

  // --- The Graph API side ----------------------------------------------------------------------

  /** An answer for a Graph API call: the body Meta would send, or one of its errors. */
  async sendFromBot(
    phoneNumberId: string,
    body: unknown,
    traceId: string | undefined,
  ): Promise<{ status: number; body: unknown }> {
    const business = this.business(phoneNumberId);
    if (!business) return this.#graphError(MetaErrors.unknownObject(phoneNumberId, "post"), "send", traceId);
    const parsed = parseSendMessage(body);
    if (!parsed.ok) return this.#graphError(parsed.error, "send", traceId);
    const request = parsed.request;
    const byPhone = request.to !== undefined;
    const input = request.to ?? request.recipient ?? "";
    const address = input.replace(/^\+/, "").replace(/[\s()-]/g, "");
    let shopper = [...this.#shoppers.values()].find(
      (s) => s.phoneNumberId === phoneNumberId && (byPhone ? s.waId === address : s.userId === input),
    );
    if (!byPhone && request.template && this.options.authenticationTemplates.includes(request.template.name))
      return this.#graphError(MetaErrors.bsuidUnsupported(), "send", traceId);
    if (this.toggles.rateLimit)
      return this.#graphError(MetaErrors.rateLimit(), "send (rate limit toggle)", traceId);
    if (!request.template) {
      if (this.toggles.windowClosed)
        return this.#graphError(MetaErrors.reEngagement(), "send (24-hour window toggle)", traceId);
      const last = shopper?.lastInboundAt;
      if (last === undefined || this.now().getTime() - last > SERVICE_WINDOW_MS)
        return this.#graphError(MetaErrors.reEngagement(), "send", traceId);
    }
    const limit = this.#throughput.take(phoneNumberId, address);
    if (limit === "number") return this.#graphError(MetaErrors.rateLimit(), "send", traceId);
    if (limit === "pair") return this.#graphError(MetaErrors.pairRateLimit(), "send", traceId);
    let imageUrl: string | undefined;
    if (request.mediaId) {
      if (!this.#media.has(request.mediaId))
        return this.#graphError(
          MetaErrors.invalidParameter(`Param image['id'] is not a valid media id: ${request.mediaId}`),
          "send",
          traceId,
        );
      imageUrl = `/sim/media/${request.mediaId}`;
    }
    // A template may go to someone who never wrote: they join the simulator's shoppers.
    shopper ??= this.#addShopper({
      name: input,
      phoneNumberId,
      ...(byPhone ? { waId: address } : { userId: input }),
    });
    const wamid = newWamid();
    if (traceId) this.#traces.set(wamid, traceId);
    if (request.callbackData) this.#callbackData.set(wamid, request.callbackData);
    const traceUrl = traceId ? this.traceUrl(traceId) : undefined;
    const message: ChatMessage = {
      id: wamid,
      from: "bot",
      at: this.now().toISOString(),
      ...request.content,
      ...(imageUrl ? { imageUrl } : {}),
      ...(traceUrl ? { traceUrl } : {}),
    };
    shopper.messages.push(message);
    this.#changed(shopper, message);
    this.log("graph", `← dispatcher: ${message.type} to ${shopper.name}: 200 ${short(wamid)}`, traceUrl);
    const target = shopper;
    this.#track(this.#afterSend(target, message));
    return {
      status: 200,
      body: {
        messaging_product: "whatsapp",
        contacts: [byPhone ? { input, wa_id: address } : { input, user_id: input }],
        messages: [{ id: wamid }],
      },
    };
  }

  /** The statuses of a message Meta took: sent, delivered, and read when the chat is open. */
  async #afterSend(shopper: ShopperState, message: ChatMessage): Promise<void> {
    const delays = this.options.statusDelaysMs;
    const signal = this.#closing.signal;
    await sleep(delays.sent, undefined, { signal }).catch(() => undefined);
    await this.#status(shopper, message, "sent");
    await sleep(delays.delivered, undefined, { signal }).catch(() => undefined);
    await this.#status(shopper, message, "delivered");
    if (this.#openShopper !== shopper.id) return;
    await sleep(delays.read, undefined, { signal }).catch(() => undefined);
    await this.#status(shopper, message, "read");
  }

  #graphError(error: MetaError, what: string, traceId: string | undefined) {
    this.log(
      "graph",
      `← dispatcher ${what}: HTTP ${error.status}, error ${error.body.error.code}: ${error.body.error.error_data?.details ?? error.body.error.message}`,
      traceId ? this.traceUrl(traceId) : undefined,
    );
    return { status: error.status, body: error.body };
  }

  graphError(error: MetaError, what: string, traceId: string | undefined) {
    return this.#graphError(error, what, traceId);
  }

  /** Stops retries and pending statuses. */
  async close(): Promise<void> {
    this.#closing.abort();
    await Promise.allSettled([...this.#pending]);
  }
}

const IMAGE_TOGGLE: Record<Toggles["image"], string> = {
  ok: "image provider works",
  fail: "image provider fails (500)",
  timeout: "image provider hangs",
};

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new SimulatorInputError(`${what}: expected a JSON object`);
  return value as Record<string, unknown>;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new SimulatorInputError(`${what}: expected a string`);
  return value.trim() || undefined;
}

const identity = (shopper: ShopperState): Identity => ({
  name: shopper.name,
  ...(shopper.waId ? { waId: shopper.waId } : {}),
  ...(shopper.userId ? { userId: shopper.userId } : {}),
});

/** One conversation id per shopper and business number, as Meta's pricing objects carry. */
const conversationIdFor = (shopper: ShopperState) =>
  Buffer.from(`${shopper.phoneNumberId}:${shopper.id}`).toString("hex").slice(0, 30).padEnd(30, "0");

const short = (wamid: string) => `${wamid.slice(0, 14)}…`;

const hours = (ms: number) => {
  const h = ms / 3_600_000;
  return Number.isInteger(h) ? `${h} h` : `${(ms / 60_000).toFixed(0)} min`;
};

import { type MetaError, MetaErrors } from "./meta-errors.ts";
import type { ChatMessage } from "./types.ts";

/**
 * Meta's limits on a send-message body (Cloud API messages reference). Written out here rather than
 * imported from ingress's payload builder on purpose: the simulator stands in for Meta, so a limit
 * ingress got wrong is refused here as Meta would refuse it, not agreed with.
 */
const LIMITS = {
  text: 4096,
  caption: 1024,
  body: 1024,
  header: 60,
  footer: 60,
  buttons: 3,
  buttonTitle: 20,
  buttonId: 256,
  listButton: 20,
  sections: 10,
  rows: 10,
  sectionTitle: 24,
  rowTitle: 24,
  rowDescription: 72,
  rowId: 200,
  ctaText: 20,
} as const;

/** A BSUID: two capital letters (a country), a dot, maybe ENT., then letters and digits. */
export const BSUID = /^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/;

/** What a valid send asks for: whom, and the message as the chat shows it. */
export interface SendRequest {
  to?: string;
  recipient?: string;
  /** The message without the fields the simulator fills (id, from, at, status). */
  content: Omit<ChatMessage, "id" | "from" | "at" | "status">;
  /** Templates are the one kind Meta sends outside the 24-hour window. */
  template?: { name: string; language: string };
  /** An image sent by media id (uploaded earlier), to be resolved to its bytes. */
  mediaId?: string;
  /** biz_opaque_callback_data: echoed, untouched, in the message's status webhooks. */
  callbackData?: string;
}

type Json = Record<string, unknown>;

class Invalid extends Error {}

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Reads and checks a send-message body the way Meta does: the first problem found is the answer. */
export function parseSendMessage(
  body: unknown,
): { ok: true; request: SendRequest } | { ok: false; error: MetaError } {
  try {
    return { ok: true, request: parse(body) };
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, error: MetaErrors.invalidParameter(error.message) };
    throw error;
  }
}

function fail(message: string): never {
  throw new Invalid(message);
}

/** A string parameter: present (when required) and within its length. */
function text(value: unknown, path: string, max: number, required = true): string | undefined {
  if (value === undefined || value === null || value === "") {
    if (required) fail(`The parameter ${path} is required.`);
    return undefined;
  }
  if (typeof value !== "string") fail(`Param ${path} must be a string.`);
  if (value.length > max) fail(`Param ${path} must be at most ${max} characters long.`);
  return value;
}

function object(value: unknown, path: string): Json {
  if (!isObject(value)) fail(`The parameter ${path} is required.`);
  return value;
}

function parse(body: unknown): SendRequest {
  if (!isObject(body)) fail("The request body must be a JSON object.");
  if (body.messaging_product !== "whatsapp") fail("The parameter messaging_product is required.");
  if (body.recipient_type !== undefined && body.recipient_type !== "individual")
    fail("Param recipient_type must be one of {INDIVIDUAL, GROUP}.");
  const to = typeof body.to === "string" && body.to !== "" ? body.to : undefined;
  const recipient = typeof body.recipient === "string" && body.recipient !== "" ? body.recipient : undefined;
  if (!to && !recipient) fail("The parameter to or recipient is required.");
  if (to && !/^\+?[\d\s()-]{5,20}$/.test(to)) fail("Param to must be a valid phone number.");
  // With both, Meta sends to the phone number and does not look at the BSUID.
  if (!to && recipient && !BSUID.test(recipient))
    fail("Param recipient must be a valid business-scoped user ID.");
  const context = isObject(body.context) ? body.context : undefined;
  const replyTo = typeof context?.message_id === "string" ? context.message_id : undefined;
  const callback = body.biz_opaque_callback_data;
  if (callback !== undefined && (typeof callback !== "string" || callback.length > 512))
    fail("Param biz_opaque_callback_data must be a string of at most 512 characters.");
  const base = {
    ...(to ? { to } : {}),
    ...(recipient ? { recipient } : {}),
    ...(callback ? { callbackData: callback } : {}),
  };
  const request = content(body);
  return { ...base, ...request, content: { ...request.content, ...(replyTo ? { replyTo } : {}) } };
}

function content(body: Json): Omit<SendRequest, "to" | "recipient"> {
  switch (body.type ?? "text") {
    case "text": {
      const t = object(body.text, "text");
      return { content: { type: "text", text: text(t.body, "text['body']", LIMITS.text) } };
    }
    case "image": {
      const image = object(body.image, "image");
      const caption = text(image.caption, "image['caption']", LIMITS.caption, false);
      const id = typeof image.id === "string" && image.id !== "" ? image.id : undefined;
      const link = typeof image.link === "string" && image.link !== "" ? image.link : undefined;
      if (!id && !link) fail("The parameter image['id'] or image['link'] is required.");
      if (link && !/^https?:\/\/\S+$/.test(link)) fail("Param image['link'] must be a valid URL.");
      return {
        content: {
          type: "image",
          ...(caption ? { caption } : {}),
          ...(link && !id ? { imageUrl: link } : {}),
        },
        ...(id ? { mediaId: id } : {}),
      };
    }
    case "interactive":
      return { content: interactive(object(body.interactive, "interactive")) };
    case "template": {
      const template = object(body.template, "template");
      const name = text(template.name, "template['name']", 512) ?? "";
      const language = object(template.language, "template['language']");
      const code = text(language.code, "template['language']['code']", 15) ?? "";
      const parameters = (Array.isArray(template.components) ? template.components : [])
        .filter(isObject)
        .flatMap((component) => (Array.isArray(component.parameters) ? component.parameters : []))
        .filter(isObject)
        .map((parameter) => (typeof parameter.text === "string" ? parameter.text : ""))
        .filter((value) => value !== "");
      return {
        content: { type: "template", text: [name, ...parameters].join(" · ") },
        template: { name, language: code },
      };
    }
    default:
      return fail(
        `Param type must be one of {AUDIO, CONTACTS, DOCUMENT, IMAGE, INTERACTIVE, LOCATION, REACTION, STICKER, TEMPLATE, TEXT, VIDEO}; the simulator takes text, image, interactive and template.`,
      );
  }
}

function decorations(i: Json): Pick<ChatMessage, "header" | "footer"> {
  const header = isObject(i.header) ? i.header : undefined;
  if (header && header.type !== "text") fail("Param interactive['header']['type'] must be text here.");
  const headerText = header ? text(header.text, "interactive['header']['text']", LIMITS.header) : undefined;
  const footer = isObject(i.footer)
    ? text(i.footer.text, "interactive['footer']['text']", LIMITS.footer)
    : undefined;
  return { ...(headerText ? { header: headerText } : {}), ...(footer ? { footer } : {}) };
}

function interactive(i: Json): SendRequest["content"] {
  const body = text(object(i.body, "interactive['body']").text, "interactive['body']['text']", LIMITS.body);
  const action = object(i.action, "interactive['action']");
  switch (i.type) {
    case "button": {
      const buttons = Array.isArray(action.buttons) ? action.buttons : [];
      if (buttons.length < 1) fail("Param interactive['action']['buttons'] must contain at least 1 element.");
      if (buttons.length > LIMITS.buttons)
        fail(`Param interactive['action']['buttons'] must contain at most ${LIMITS.buttons} elements.`);
      const parsed = buttons.map((button, index) => {
        const path = `interactive['action']['buttons'][${index}]`;
        const b = object(button, path);
        if (b.type !== "reply") fail(`Param ${path}['type'] must be reply.`);
        const reply = object(b.reply, `${path}['reply']`);
        return {
          id: text(reply.id, `${path}['reply']['id']`, LIMITS.buttonId) ?? "",
          title: text(reply.title, `${path}['reply']['title']`, LIMITS.buttonTitle) ?? "",
        };
      });
      if (new Set(parsed.map((b) => b.id)).size !== parsed.length)
        fail("Duplicate button ids are not allowed: interactive['action']['buttons'].");
      if (new Set(parsed.map((b) => b.title)).size !== parsed.length)
        fail("Duplicate button titles are not allowed: interactive['action']['buttons'].");
      return { type: "interactive-button", text: body, ...decorations(i), buttons: parsed };
    }
    case "list": {
      const button = text(action.button, "interactive['action']['button']", LIMITS.listButton) ?? "";
      const sections = Array.isArray(action.sections) ? action.sections : [];
      if (sections.length < 1)
        fail("Param interactive['action']['sections'] must contain at least 1 element.");
      if (sections.length > LIMITS.sections)
        fail(`Param interactive['action']['sections'] must contain at most ${LIMITS.sections} elements.`);
      let rowCount = 0;
      const ids = new Set<string>();
      const parsed = sections.map((section, s) => {
        const path = `interactive['action']['sections'][${s}]`;
        const sec = object(section, path);
        const title = text(sec.title, `${path}['title']`, LIMITS.sectionTitle, sections.length > 1);
        const rows = Array.isArray(sec.rows) ? sec.rows : [];
        if (rows.length < 1) fail(`Param ${path}['rows'] must contain at least 1 element.`);
        rowCount += rows.length;
        return {
          ...(title ? { title } : {}),
          rows: rows.map((row, r) => {
            const rowPath = `${path}['rows'][${r}]`;
            const o = object(row, rowPath);
            const id = text(o.id, `${rowPath}['id']`, LIMITS.rowId) ?? "";
            if (ids.has(id)) fail(`Duplicate row id ${id}: row ids must be unique across sections.`);
            ids.add(id);
            const description = text(
              o.description,
              `${rowPath}['description']`,
              LIMITS.rowDescription,
              false,
            );
            return {
              id,
              title: text(o.title, `${rowPath}['title']`, LIMITS.rowTitle) ?? "",
              ...(description ? { description } : {}),
            };
          }),
        };
      });
      if (rowCount > LIMITS.rows)
        fail(`Total row count in interactive['action']['sections'] must be at most ${LIMITS.rows}.`);
      return { type: "interactive-list", text: body, ...decorations(i), list: { button, sections: parsed } };
    }
    case "cta_url": {
      if (action.name !== "cta_url") fail("Param interactive['action']['name'] must be cta_url.");
      const parameters = object(action.parameters, "interactive['action']['parameters']");
      const displayText =
        text(
          parameters.display_text,
          "interactive['action']['parameters']['display_text']",
          LIMITS.ctaText,
        ) ?? "";
      const url = text(parameters.url, "interactive['action']['parameters']['url']", 2000) ?? "";
      if (!/^https?:\/\/\S+$/.test(url))
        fail("Param interactive['action']['parameters']['url'] must be a valid URL.");
      return { type: "cta_url", text: body, ...decorations(i), cta: { displayText, url } };
    }
    default:
      return fail(
        "Param interactive['type'] must be one of {BUTTON, CTA_URL, LIST, PRODUCT, PRODUCT_LIST, FLOW, LOCATION_REQUEST_MESSAGE}; the simulator takes button, list and cta_url.",
      );
  }
}

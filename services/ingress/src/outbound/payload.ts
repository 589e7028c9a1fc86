import type { outbound } from "@taituri/proto";
import { CALLBACK_DATA_MAX } from "../domain/webhook.ts";

export class InvalidOutboundMessage extends Error {
  override readonly name = "InvalidOutboundMessage";
}

/**
 * WhatsApp's limits on what it accepts (Cloud API send-message reference). A message over any of
 * them is refused by Meta with an error the shopper never sees; refusing it here, with every reason
 * at once, tells the sender exactly what to fix, and nothing is cut into something meaningless.
 */
export const LIMITS = {
  text: 4096,
  caption: 1024,
  interactiveBody: 1024,
  headerText: 60,
  footerText: 60,
  buttons: 3,
  buttonTitle: 20,
  buttonId: 256,
  listButton: 20,
  listRows: 10,
  listSections: 10,
  sectionTitle: 24,
  rowTitle: 24,
  rowDescription: 72,
  rowId: 200,
  ctaDisplayText: 20,
} as const;

/** The kinds that may only be sent inside the 24-hour customer service window. */
export const isFreeForm = (message: outbound.OutboundMessage) => message.content?.$case !== "template";

/** How a send names the shopper: Meta's `recipient` (a BSUID) or `to` (a phone number). */
export type Addressing = "bsuid" | "phone";

/**
 * The BSUID when the message has one (the id the conversation is keyed by, the one every webhook
 * carries, and for a shopper who hides their number the only one), else the phone number.
 * `phoneOnly`: Meta refused the BSUID for this message (131062), so only the phone number is left.
 * The body names one of the two, never both: with both, Meta would use `to` and ignore `recipient`.
 */
export function addressing(message: outbound.OutboundMessage, phoneOnly = false): Addressing | undefined {
  if (message.recipientUserId !== "" && !phoneOnly) return "bsuid";
  return message.to !== "" ? "phone" : undefined;
}

// A BSUID is a country code, a dot and letters and digits (US.13491208655302741918; a parent BSUID
// has ENT. after the country); a phone number (wa_id) is digits. One in the other's field is a bug
// upstream that Meta would answer with a confusing error, or with a message to the wrong person.
const LOOKS_LIKE_BSUID = /^[A-Z]{2}\./;
const LOOKS_LIKE_PHONE = /^\+?\d+$/;

/**
 * The Cloud API send-message body for an outbound message. `mediaId` is the id of the image
 * already uploaded to /{phone_number_id}/media, for an image from our store; `phoneOnly` sends to
 * the phone number even when the message has a BSUID (see addressing); `callbackData` is the sealed
 * outbound id Meta echoes in the statuses (CallbackData).
 */
export function toGraphPayload(
  message: outbound.OutboundMessage,
  resolved: { mediaId?: string; phoneOnly?: boolean; callbackData?: string } = {},
): Record<string, unknown> {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => {
    if (!ok) problems.push(problem);
  };
  const within = (value: string, max: number, what: string, required = true) => {
    if (required) check(value.trim() !== "", `${what} is empty`);
    check(value.length <= max, `${what} has ${value.length} characters, over ${max}`);
  };
  const address = addressing(message, resolved.phoneOnly);
  check(address !== undefined, "no recipient");
  check(!LOOKS_LIKE_BSUID.test(message.to), "to holds a business-scoped user id, not a phone number");
  check(
    !LOOKS_LIKE_PHONE.test(message.recipientUserId),
    "recipient_user_id holds a phone number, not a business-scoped user id",
  );
  check(message.phoneNumberId !== "", "no sending phone number id");

  const base: Record<string, unknown> = {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    ...(address === "bsuid" ? { recipient: message.recipientUserId } : { to: message.to }),
    ...(message.replyToMessageId ? { context: { message_id: message.replyToMessageId } } : {}),
    // Echoed in the message's statuses: how the status tracker records a send whose sender died
    // before it could (dispatcher.ts), so a take-over does not send it again. Sealed (callback-data.ts).
    ...(resolved.callbackData && resolved.callbackData.length <= CALLBACK_DATA_MAX
      ? { biz_opaque_callback_data: resolved.callbackData }
      : {}),
  };
  const decorations = (c: { header: string; footer: string }) => {
    within(c.header, LIMITS.headerText, "header", false);
    within(c.footer, LIMITS.footerText, "footer", false);
    return {
      ...(c.header ? { header: { type: "text", text: c.header } } : {}),
      ...(c.footer ? { footer: { text: c.footer } } : {}),
    };
  };

  let payload: Record<string, unknown> = {};
  const content = message.content;
  switch (content?.$case) {
    case undefined:
      problems.push("no content");
      break;
    case "text":
      within(content.value.body, LIMITS.text, "text");
      payload = { type: "text", text: { body: content.value.body, preview_url: content.value.previewUrl } };
      break;
    case "image": {
      const image = content.value;
      within(image.caption, LIMITS.caption, "caption", false);
      const caption = image.caption ? { caption: image.caption } : {};
      if (image.source?.$case === "link") {
        check(/^https:\/\/\S+$/.test(image.source.value), "image link is not an https URL");
        payload = { type: "image", image: { link: image.source.value, ...caption } };
      } else if (image.source?.$case === "storedImageId") {
        check(resolved.mediaId !== undefined, "stored image not uploaded");
        payload = { type: "image", image: { id: resolved.mediaId, ...caption } };
      } else {
        problems.push("image without a link or a stored image id");
      }
      break;
    }
    case "buttons": {
      const b = content.value;
      within(b.body, LIMITS.interactiveBody, "body");
      check(
        b.buttons.length >= 1 && b.buttons.length <= LIMITS.buttons,
        `${b.buttons.length} buttons, need 1 to ${LIMITS.buttons}`,
      );
      b.buttons.forEach((button, i) => {
        within(button.title, LIMITS.buttonTitle, `button ${i + 1} title`);
        within(button.id, LIMITS.buttonId, `button ${i + 1} id`);
      });
      check(unique(b.buttons.map((x) => x.id)), "button ids repeat");
      check(unique(b.buttons.map((x) => x.title)), "button titles repeat");
      payload = {
        type: "interactive",
        interactive: {
          type: "button",
          ...decorations(b),
          body: { text: b.body },
          action: { buttons: b.buttons.map((x) => ({ type: "reply", reply: { id: x.id, title: x.title } })) },
        },
      };
      break;
    }
    case "list": {
      const l = content.value;
      within(l.body, LIMITS.interactiveBody, "body");
      within(l.button, LIMITS.listButton, "list button");
      const rows = l.sections.flatMap((section) => section.rows);
      check(
        l.sections.length >= 1 && l.sections.length <= LIMITS.listSections,
        `${l.sections.length} sections, need 1 to ${LIMITS.listSections}`,
      );
      check(
        rows.length >= 1 && rows.length <= LIMITS.listRows,
        `${rows.length} rows, need 1 to ${LIMITS.listRows}`,
      );
      l.sections.forEach((section, s) => {
        // A title is optional with one section and required with several (WhatsApp shows them as headings).
        within(section.title, LIMITS.sectionTitle, `section ${s + 1} title`, l.sections.length > 1);
        check(section.rows.length > 0, `section ${s + 1} has no rows`);
      });
      rows.forEach((row, r) => {
        within(row.title, LIMITS.rowTitle, `row ${r + 1} title`);
        within(row.id, LIMITS.rowId, `row ${r + 1} id`);
        within(row.description, LIMITS.rowDescription, `row ${r + 1} description`, false);
      });
      check(unique(rows.map((row) => row.id)), "row ids repeat");
      payload = {
        type: "interactive",
        interactive: {
          type: "list",
          ...decorations(l),
          body: { text: l.body },
          action: {
            button: l.button,
            sections: l.sections.map((section) => ({
              ...(section.title ? { title: section.title } : {}),
              rows: section.rows.map((row) => ({
                id: row.id,
                title: row.title,
                ...(row.description ? { description: row.description } : {}),
              })),
            })),
          },
        },
      };
      break;
    }
    case "ctaUrl": {
      const c = content.value;
      within(c.body, LIMITS.interactiveBody, "body");
      within(c.displayText, LIMITS.ctaDisplayText, "button text");
      check(/^https?:\/\/\S+$/.test(c.url), "CTA url is not an http(s) URL");
      payload = {
        type: "interactive",
        interactive: {
          type: "cta_url",
          ...decorations(c),
          body: { text: c.body },
          action: { name: "cta_url", parameters: { display_text: c.displayText, url: c.url } },
        },
      };
      break;
    }
    case "template": {
      const t = content.value;
      check(/^[a-z0-9_]{1,512}$/.test(t.name), "template name must be lowercase letters, digits and _");
      check(
        /^[a-z]{2,3}(_[A-Z]{2})?$/.test(t.language),
        `template language "${t.language}" is not a code like en or en_US`,
      );
      payload = {
        type: "template",
        template: {
          name: t.name,
          language: { code: t.language },
          ...(t.bodyParameters.length > 0
            ? {
                components: [
                  { type: "body", parameters: t.bodyParameters.map((text) => ({ type: "text", text })) },
                ],
              }
            : {}),
        },
      };
      break;
    }
  }
  if (problems.length > 0) throw new InvalidOutboundMessage(`outbound ${message.id}: ${problems.join("; ")}`);
  return { ...base, ...payload };
}

function unique(values: string[]): boolean {
  return new Set(values).size === values.length;
}

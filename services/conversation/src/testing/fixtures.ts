import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { parseCatalog, type Shop } from "../domain/catalog.ts";
import { parseCountries } from "../domain/countries.ts";
import type { Context, Conversation, Effect, Event, Input, Outgoing } from "../domain/machine.ts";
import { parseMessageCatalog } from "../domain/messages.ts";

/** The shipped catalogs, loaded once for the domain's tests. */
export const catalog = parseCatalog(
  parse(readFileSync(new URL("../../data/catalog.yaml", import.meta.url), "utf8")),
);
export const messages = parseMessageCatalog(
  JSON.parse(readFileSync(new URL("../../data/messages.json", import.meta.url), "utf8")),
);
export const countries = parseCountries(
  JSON.parse(readFileSync(new URL("../../data/countries.json", import.meta.url), "utf8")),
);
export const shop = catalog.shops[0] as Context["shop"];

/** The shipped shop with its delivery changed, validated as the catalog would be. */
const variant = (delivery: Record<string, unknown>): Shop =>
  parseCatalog({ shops: [{ ...shop, delivery }] }).shops[0] as Shop;

/** Two pickup points besides the shipped shop's countries. */
export const pickupShop = variant({
  ...shop.delivery,
  pickup: [
    {
      id: "madrid-centro",
      name: { en: "Madrid centre", es: "Madrid centro" },
      address: "Calle Mayor 1, 28013 Madrid",
    },
    {
      id: "lisboa-baixa",
      name: { en: "Lisbon Baixa", es: "Lisboa Baixa" },
      address: "Rua Augusta 10, 1100-053 Lisboa",
    },
  ],
});
/** Ships to Spain alone, no pickup: the country is never asked. */
export const spainShop = variant({ countries: ["ES"] });

export const context = (overrides: Partial<Context> = {}): Context => ({
  conversationId: "PN:555",
  shop,
  messages,
  countries,
  now: 1_000_000,
  sessionTtlMs: 2 * 3600 * 1000,
  generationDeadlineMs: 90_000,
  ...overrides,
});

export const message = (input: Input, at = 1_000_000, shopperName = "Ana"): Event => ({
  type: "message",
  messageId: `m${at}`,
  at,
  shopperName,
  input,
});
export const text = (value: string, at?: number) => message({ kind: "text", text: value }, at);
export const tap = (id: string, at?: number) => message({ kind: "reply", id, title: "" }, at);

export const sent = (effects: Effect[]): Outgoing[] =>
  effects.flatMap((e) => (e.type === "send" ? [e.message] : []));

/** Every text a shopper would read in these effects (bodies, captions, row titles). */
export const said = (effects: Effect[]): string =>
  sent(effects)
    .map((m) => {
      switch (m.kind) {
        case "text":
          return m.text;
        case "buttons":
          return `${m.body} [${m.buttons.map((b) => b.title).join("|")}]`;
        case "list":
          return `${m.body} {${m.rows.map((r) => r.title).join("|")}}`;
        case "image":
          return `<image ${m.imageId}: ${m.caption}>`;
        case "cta":
          return `${m.body} (${m.displayText} ${m.url})`;
        default:
          return "";
      }
    })
    .join("\n");

/** The reply ids on offer in these effects (buttons and list rows). */
export const offered = (effects: Effect[]): string[] =>
  sent(effects).flatMap((m) =>
    m.kind === "buttons" ? m.buttons.map((b) => b.id) : m.kind === "list" ? m.rows.map((r) => r.id) : [],
  );

export type { Conversation };

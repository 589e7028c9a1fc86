import { z } from "zod";
import { normalize, normalizedName } from "./catalog.ts";

export const MESSAGE_KEYS = [
  "greeting",
  "greetingAnonymous",
  "askRecipientAgain",
  "askTheme",
  "themeButton",
  "askThemeAgain",
  "askStyle",
  "styleButton",
  "askStyleAgain",
  "confirm",
  "generateButton",
  "generating",
  "stillGenerating",
  "designCaption",
  "choose",
  "chooseButton",
  "designRow",
  "moreRow",
  "noMoreRounds",
  "generationFailed",
  "generationRefused",
  "generationUnavailable",
  "retryButton",
  "rateLimited",
  "designChanged",
  "askDeliveryMethod",
  "askDeliveryMethodAgain",
  "addressButton",
  "pickupButton",
  "askCountry",
  "askCountryAgain",
  "countryNotServed",
  "countryButton",
  "askAddressName",
  "askPickupName",
  "askNameAgain",
  "askStreet",
  "askStreetAgain",
  "askCity",
  "askCityAgain",
  "askPostcode",
  "postcodeInvalid",
  "askPickup",
  "askPickupAgain",
  "pickupListButton",
  "confirmAddress",
  "confirmPickup",
  "confirmDeliveryAgain",
  "confirmButton",
  "changeButton",
  "askChange",
  "askChangeAgain",
  "changeListButton",
  "fieldName",
  "fieldStreet",
  "fieldCity",
  "fieldPostcode",
  "fieldCountry",
  "fieldMethod",
  "fieldLocation",
  "keepRow",
  "preparingCheckout",
  "pay",
  "payButton",
  "payReminder",
  "paid",
  "paymentFailed",
  "paymentExpired",
  "alreadyPaid",
  "paidOther",
  "refundedCancelled",
  "refundedByShop",
  "shipped",
  "shippedTracking",
  "welcomeBack",
  "continueButton",
  "restartButton",
  "stale",
  "help",
  "cancelled",
  "orderCancelled",
  "textOnly",
] as const;
export type MessageKey = (typeof MESSAGE_KEYS)[number];

/**
 * Words a shopper may write instead of tapping. restart, cancel and help work at every step; the
 * others only where their button or list is showing (a delivery field's name, say, only where the
 * shopper chooses what to change), so a word may be in several (the first listed wins in commandOf).
 */
export const COMMANDS = [
  "restart",
  "cancel",
  "help",
  "generate",
  "more",
  "continue",
  "confirm",
  "change",
  "address",
  "pickup",
  "name",
  "street",
  "city",
  "postcode",
  "country",
  "method",
  "location",
  "keep",
] as const;
export type Command = (typeof COMMANDS)[number];

const language = z.object({
  texts: z
    .object(
      Object.fromEntries(MESSAGE_KEYS.map((key) => [key, z.string().min(1)])) as Record<
        MessageKey,
        z.ZodString
      >,
    )
    .strict(),
  commands: z
    .object(
      Object.fromEntries(COMMANDS.map((c) => [c, z.array(z.string().min(1)).min(1)])) as Record<
        Command,
        z.ZodArray<z.ZodString>
      >,
    )
    .strict(),
});

/** Every language must carry every message: a missing translation fails start-up, not a shopper's chat. */
export const messageCatalogSchema = z.record(
  z.string().regex(/^[a-z]{2}$/, "language codes are ISO 639-1"),
  language,
);

export type MessageCatalog = z.infer<typeof messageCatalogSchema>;

export function parseMessageCatalog(json: unknown): MessageCatalog {
  return messageCatalogSchema.parse(json);
}

/** Fills {placeholders}; a placeholder without a value is an error, never sent to a shopper as-is. */
export function render(
  catalog: MessageCatalog,
  language: string,
  key: MessageKey,
  params: Record<string, string> = {},
): string {
  const texts = catalog[language]?.texts;
  if (!texts) throw new Error(`no messages for language "${language}"`);
  return texts[key].replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`message "${key}" needs {${name}}`);
    return value;
  });
}

/** The command a text is, in the language, if it is exactly one (ignoring case and accents). */
export function commandOf(catalog: MessageCatalog, language: string, text: string): Command | undefined {
  // Asked of every text a shopper sends: the text is normalised once, the words are remembered.
  const said = normalize(text) || text.trim();
  return COMMANDS.find((command) => saysCommand(catalog, language, said, command));
}

/** Whether a text is one of the command's words in the language (ignoring case and accents). */
export function isCommand(
  catalog: MessageCatalog,
  language: string,
  text: string,
  command: Command,
): boolean {
  return saysCommand(catalog, language, normalize(text) || text.trim(), command);
}

function saysCommand(catalog: MessageCatalog, language: string, said: string, command: Command): boolean {
  const words = catalog[language]?.commands[command] ?? [];
  return words.some((word) => (normalizedName(word) || word) === said);
}

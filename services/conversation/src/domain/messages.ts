import { z } from "zod";

const KEYS = ["greeting", "greetingAnonymous", "askRecipientAgain", "askTheme", "askThemeAgain"] as const;
export type MessageKey = (typeof KEYS)[number];

const language = z
  .object(Object.fromEntries(KEYS.map((key) => [key, z.string().min(1)])) as Record<MessageKey, z.ZodString>)
  .strict();

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
  const texts = catalog[language];
  if (!texts) throw new Error(`no messages for language "${language}"`);
  return texts[key].replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`message "${key}" needs {${name}}`);
    return value;
  });
}

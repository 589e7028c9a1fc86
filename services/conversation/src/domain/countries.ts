import { z } from "zod";
import { normalize, normalizedName } from "./catalog.ts";

/** A postcode pattern, compiled at load so a bad one fails start-up; anchored, matched ignoring case. */
const pattern = z.string().transform((p, ctx) => {
  const fail = (message: string) => {
    ctx.issues.push({ code: "custom", input: p, message });
    return z.NEVER;
  };
  if (!p.startsWith("^") || !p.endsWith("$")) return fail("a postcode pattern is anchored: ^…$");
  try {
    return new RegExp(p, "i");
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
});

const country = z
  .object({
    // Shown as a list row, whose title WhatsApp cuts off at 24 characters.
    name: z.record(z.string().regex(/^[a-z]{2}$/), z.string().min(1).max(24)),
    // Other names a shopper may write (any language), matched like the names.
    aliases: z.array(z.string().min(1)).default([]),
    postcode: pattern,
    // Shown to a shopper whose postcode does not fit, written as `postcode` normalises it.
    example: z.string().min(1),
    // Where the country writes a separator the shopper may leave out ("SW1A1AA" is "SW1A 1AA"): put
    // before the last `beforeLast` characters, once any spaces and hyphens typed are taken out.
    separator: z.enum([" ", "-"]).optional(),
    beforeLast: z.number().int().min(1).max(8).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.separator === undefined) !== (c.beforeLast === undefined))
      ctx.addIssue({ code: "custom", path: ["separator"], message: "separator and beforeLast go together" });
    const example = normalizePostcode(c, c.example);
    if (example !== c.example || !c.postcode.test(example))
      ctx.addIssue({
        code: "custom",
        path: ["example"],
        message: "the example does not fit its own pattern",
      });
  });

/** Per ISO 3166-1 alpha-2 code: what the delivery step needs to ask for an address there. */
export const countriesSchema = z.record(z.string().regex(/^[A-Z]{2}$/, "ISO 3166-1 alpha-2 codes"), country);

export type Countries = z.infer<typeof countriesSchema>;
export type Country = Countries[string];

export function parseCountries(json: unknown): Countries {
  return countriesSchema.parse(json);
}

/**
 * A postcode as the country writes it: upper case, single spaces; with the country's separator in
 * its place when it has one ("sw1a1aa" → "SW1A 1AA", "1234ab" → "1234 AB", "1000 001" → "1000-001").
 */
export function normalizePostcode(country: Pick<Country, "separator" | "beforeLast">, text: string): string {
  const spaced = text.toUpperCase().replace(/\s+/g, " ").trim();
  const { separator, beforeLast } = country;
  if (separator === undefined || beforeLast === undefined) return spaced;
  const compact = spaced.replace(/[\s-]/g, "");
  if (compact.length <= beforeLast) return compact;
  return `${compact.slice(0, -beforeLast)}${separator}${compact.slice(-beforeLast)}`;
}

/** The postcode, normalised, if it has the country's shape. */
export function validPostcode(country: Country, text: string): string | undefined {
  const postcode = normalizePostcode(country, text);
  return country.postcode.test(postcode) ? postcode : undefined;
}

/** The country's name in `language`, else in English, else its code. */
export function countryName(countries: Countries, code: string, language: string): string {
  const names = countries[code]?.name;
  return names?.[language] ?? names?.en ?? code;
}

/**
 * The country a shopper's free text names, among `codes`: its code, a name in any language or an
 * alias, ignoring case, accents and punctuation.
 */
export function matchCountry(
  countries: Countries,
  codes: readonly string[],
  text: string,
): string | undefined {
  const said = normalize(text);
  if (!said) return undefined;
  return codes.find((code) => {
    const c = countries[code];
    return (
      c !== undefined &&
      [code, ...Object.values(c.name), ...c.aliases].some((candidate) => normalizedName(candidate) === said)
    );
  });
}

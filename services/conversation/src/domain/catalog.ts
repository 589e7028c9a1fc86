import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { Countries } from "./countries.ts";

const localized = z.record(z.string().regex(/^[a-z]{2}$/), z.string().min(1));
const option = z.object({
  id: z.string().regex(/^[a-z0-9-]{1,40}$/, "ids are lowercase letters, digits and -, at most 40"),
  name: localized,
  aliases: z.record(z.string(), z.array(z.string().min(1))).default({}),
});

const delivery = z.object({
  // ISO 3166-1 alpha-2 codes, each in the countries file (catalogProblems). Offered as a list: at
  // most 10 rows.
  countries: z
    .array(z.string().regex(/^[A-Z]{2}$/, "ISO 3166-1 alpha-2 codes"))
    .min(1)
    .max(10),
  // Where a shopper may collect the gift instead. Offered as a list: at most 10 rows, each titled
  // by its name (at most 24 characters) and described by its address (at most 72).
  pickup: z
    .array(
      z.object({
        id: z.string().regex(/^[a-z0-9-]{1,40}$/, "ids are lowercase letters, digits and -, at most 40"),
        name: z.record(z.string().regex(/^[a-z]{2}$/), z.string().min(1).max(24)),
        address: z.string().min(1).max(72),
      }),
    )
    .min(1)
    .max(10)
    .optional(),
});

const shop = z
  .object({
    id: z.string().min(1),
    phoneNumberIds: z.array(z.string().min(1)).min(1),
    language: z.string().regex(/^[a-z]{2}$/),
    currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code"),
    product: z.object({ id: z.string().min(1), name: localized, price: z.number().int().positive() }),
    designsPerRound: z.number().int().min(1).max(3),
    maxRounds: z.number().int().min(1).max(10),
    // WhatsApp lists show at most 10 rows: more options could not be offered.
    themes: z.array(option).min(1).max(10),
    styles: z.array(option).min(1).max(10),
    delivery,
    // Where the payment service sends the shop its paid orders; the conversation does not use it.
    fulfilment: z.object({ url: z.url({ protocol: /^https?$/ }) }).optional(),
  })
  .superRefine((s, ctx) => {
    for (const kind of ["themes", "styles"] as const) {
      const ids = s[kind].map((o) => o.id);
      if (new Set(ids).size !== ids.length)
        ctx.addIssue({ code: "custom", path: [kind], message: "ids repeat" });
      for (const [i, o] of s[kind].entries()) {
        if (!o.name[s.language])
          ctx.addIssue({ code: "custom", path: [kind, i, "name"], message: `no ${s.language} name` });
      }
    }
    if (!s.product.name[s.language])
      ctx.addIssue({ code: "custom", path: ["product", "name"], message: `no ${s.language} name` });
    if (new Set(s.delivery.countries).size !== s.delivery.countries.length)
      ctx.addIssue({ code: "custom", path: ["delivery", "countries"], message: "countries repeat" });
    const pickup = s.delivery.pickup ?? [];
    if (new Set(pickup.map((p) => p.id)).size !== pickup.length)
      ctx.addIssue({ code: "custom", path: ["delivery", "pickup"], message: "ids repeat" });
    for (const [i, p] of pickup.entries()) {
      if (!p.name[s.language])
        ctx.addIssue({
          code: "custom",
          path: ["delivery", "pickup", i, "name"],
          message: `no ${s.language} name`,
        });
    }
  });

export const catalogSchema = z.object({ shops: z.array(shop).min(1) }).superRefine((c, ctx) => {
  const seen = new Set<string>();
  for (const s of c.shops) {
    for (const id of s.phoneNumberIds) {
      if (seen.has(id))
        ctx.addIssue({ code: "custom", path: ["shops"], message: `phone number id ${id} is in two shops` });
      seen.add(id);
    }
  }
});

export type Catalog = z.infer<typeof catalogSchema>;
export type Shop = Catalog["shops"][number];
export type Option = Shop["themes"][number];
export type PickupLocation = NonNullable<Shop["delivery"]["pickup"]>[number];

export function parseCatalog(data: unknown): Catalog {
  return catalogSchema.parse(data);
}

/** The catalog file's text (YAML), validated. */
export const parseCatalogYaml = (text: string): Catalog => parseCatalog(parseYaml(text));

/**
 * What the catalog asks of the countries file, which it is read beside (start-up): every country a
 * shop ships to is in it, named in the shop's language. Empty when all is well.
 */
export function catalogProblems(catalog: Catalog, countries: Countries): string[] {
  return catalog.shops.flatMap((s) =>
    s.delivery.countries.flatMap((code) => {
      const country = countries[code];
      if (!country) return [`shop ${s.id} ships to ${code}, which the countries file lacks`];
      if (!country.name[s.language]) return [`country ${code} has no ${s.language} name for shop ${s.id}`];
      return [];
    }),
  );
}

/** The shop that serves a business number: the one listing it, else the one listing "*". */
export function shopFor(catalog: Catalog, phoneNumberId: string): Shop | undefined {
  return (
    catalog.shops.find((s) => s.phoneNumberIds.includes(phoneNumberId)) ??
    catalog.shops.find((s) => s.phoneNumberIds.includes("*"))
  );
}

/** Lowercase, accents and punctuation removed: "¡Cumpleaños!" matches "cumpleanos". */
export function normalize(text: string): string {
  return text
    .normalize("NFD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim();
}

const normalizedNames = new Map<string, string>();
const NORMALIZED_NAMES_MAX = 10_000;

/**
 * normalize() of a word the policy files give (a command's words, an option's or a country's id,
 * names and aliases), remembered: every text a shopper sends was compared with each command word,
 * all normalised again each time, the text once per command (2.4 % of the conversation service's
 * CPU at 500 messages/s, bench/README.md). They are a few hundred and change only with the policy
 * files; the bound keeps a stream of reloads from growing it.
 */
export function normalizedName(name: string): string {
  let normalized = normalizedNames.get(name);
  if (normalized === undefined) {
    if (normalizedNames.size >= NORMALIZED_NAMES_MAX) normalizedNames.clear();
    normalized = normalize(name);
    normalizedNames.set(name, normalized);
  }
  return normalized;
}

/**
 * The option a shopper's free text names: its id, its name or an alias in the shop's language,
 * ignoring case, accents and punctuation. Undefined when nothing matches or it is ambiguous.
 */
export function matchOption(options: Option[], text: string, language: string): Option | undefined {
  const said = normalize(text);
  if (!said) return undefined;
  const matches = options.filter((o) =>
    [o.id, ...Object.values(o.name), ...(o.aliases[language] ?? [])].some(
      (candidate) => normalizedName(candidate) === said,
    ),
  );
  return matches.length === 1 ? matches[0] : undefined;
}

import { z } from "zod";

const localized = z.record(z.string().regex(/^[a-z]{2}$/), z.string().min(1));
const option = z.object({
  id: z.string().regex(/^[a-z0-9-]{1,40}$/, "ids are lowercase letters, digits and -, at most 40"),
  name: localized,
  aliases: z.record(z.string(), z.array(z.string().min(1))).default({}),
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

export function parseCatalog(data: unknown): Catalog {
  return catalogSchema.parse(data);
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

/**
 * The option a shopper's free text names: its id, its name or an alias in the shop's language,
 * ignoring case, accents and punctuation. Undefined when nothing matches or it is ambiguous.
 */
export function matchOption(options: Option[], text: string, language: string): Option | undefined {
  const said = normalize(text);
  if (!said) return undefined;
  const matches = options.filter((o) =>
    [o.id, ...Object.values(o.name), ...(o.aliases[language] ?? [])].some(
      (candidate) => normalize(candidate) === said,
    ),
  );
  return matches.length === 1 ? matches[0] : undefined;
}

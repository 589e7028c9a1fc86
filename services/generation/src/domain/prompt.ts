import { z } from "@taituri/config";

/** What a round asks for, as the generation request carries it. */
export interface DesignBrief {
  roundId: string;
  /** The name typed by the shopper: untrusted text. */
  recipient: string;
  theme: string;
  style: string;
  productId: string;
}

const templatesSchema = z.object({
  template: z.string().min(1),
  variation: z.string().default(""),
  products: z.record(z.string(), z.string().min(1)),
  themes: z.record(z.string(), z.object({ prompt: z.string().min(1), caption: z.string().min(1) })),
  styles: z.record(z.string(), z.string().min(1)),
});
export type PromptTemplates = z.infer<typeof templatesSchema>;

const placeholders = ["name", "theme", "style", "product", "variation"] as const;

/** Validates the templates file; every placeholder the template uses must be one we fill. */
export function parsePromptTemplates(raw: unknown): PromptTemplates {
  const templates = templatesSchema.parse(raw);
  for (const match of templates.template.matchAll(/\{(\w+)\}/g)) {
    if (!placeholders.includes(match[1] as (typeof placeholders)[number]))
      throw new Error(`prompt template uses unknown placeholder {${match[1]}}`);
  }
  if (!templates.template.includes("{name}")) throw new Error("prompt template must place {name}");
  return templates;
}

/**
 * The shopper's name made safe to quote inside a prompt: control characters, quotes, braces and
 * backslashes removed (they could close our quotes and smuggle instructions), whitespace collapsed.
 * Its length is the contract's (contracts.RECIPIENT_NAME_MAX_LENGTH), checked when a request
 * arrives: a longer name is refused there, never cut here.
 */
export function cleanName(name: string): string {
  const cleaned = name
    .normalize("NFC")
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we remove.
    .replace(/[\u0000-\u001f\u007f"“”„`\\{}<>]/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  return cleaned;
}

const humanise = (id: string) => id.replace(/[-_]+/g, " ").trim();

/** The prompt for one round: the template with the brief's name, theme, style and product filled in. */
export function buildPrompt(templates: PromptTemplates, brief: DesignBrief): string {
  const values: Record<(typeof placeholders)[number], string> = {
    name: cleanName(brief.recipient) || "a friend",
    theme: templates.themes[brief.theme]?.prompt ?? humanise(brief.theme),
    style: templates.styles[brief.style] ?? humanise(brief.style),
    product: templates.products[brief.productId] ?? humanise(brief.productId),
    variation: templates.variation,
  };
  return templates.template
    .replace(/\{(\w+)\}/g, (_, key: string) => values[key as keyof typeof values] ?? "")
    .replace(/\s+/g, " ")
    .trim();
}

/** The short caption the local renderer draws under the name. */
export function captionFor(templates: PromptTemplates, theme: string): string {
  return templates.themes[theme]?.caption ?? humanise(theme).toUpperCase();
}

/**
 * The brief a prompt was built from (buildPrompt's inverse), for a stand-in that renders what a
 * prompt asks for without a model: the simulator's OpenAI-compatible images endpoint. Theme, style
 * and product come back as their ids (an unknown one as its words, dashed); undefined when the
 * prompt was not built from these templates.
 */
export function briefFromPrompt(
  templates: PromptTemplates,
  prompt: string,
  roundId: string,
): DesignBrief | undefined {
  const parts = templates.template
    .replace(/\s+/g, " ")
    .trim()
    .split(/\{(\w+)\}/);
  // Odd parts are placeholder names; even parts are the text between them, whose spaces may
  // have merged with an empty value's.
  const order: string[] = [];
  const pattern = parts
    .map((part, i) => {
      if (i % 2 === 1) {
        order.push(part);
        return "(.*?)";
      }
      return part
        .split(" ")
        .map((word) => word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
        .join("\\s*");
    })
    .join("");
  const match = new RegExp(`^\\s*${pattern}\\s*$`, "s").exec(prompt);
  if (!match) return undefined;
  const value = (name: string) => match[order.indexOf(name) + 1]?.trim() ?? "";
  const idOf = (words: string, known: Record<string, string>) =>
    Object.entries(known).find(([, text]) => text === words)?.[0] ?? words.replace(/\s+/g, "-");
  return {
    roundId,
    recipient: value("name"),
    theme: idOf(
      value("theme"),
      Object.fromEntries(Object.entries(templates.themes).map(([id, theme]) => [id, theme.prompt])),
    ),
    style: idOf(value("style"), templates.styles),
    productId: idOf(value("product"), templates.products),
  };
}

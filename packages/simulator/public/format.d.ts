/** Types of format.js (plain JavaScript served to the browser as is), for the tests that import it. */
export type FormattedNode =
  | { type: "text"; text: string }
  | { type: "br" }
  | { type: "link"; href: string; text: string }
  | { type: "mono"; text: string }
  | { type: "bold" | "italic" | "strike" | "code"; children: FormattedNode[] };

export function parseWhatsApp(text: string): FormattedNode[];

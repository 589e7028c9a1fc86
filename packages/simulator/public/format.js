/**
 * WhatsApp's message formatting, parsed into a small tree the page turns into DOM nodes (never HTML
 * strings: message text comes from the bot and the shopper and must not become markup).
 *
 * Node = { type: "text", text } | { type: "br" } | { type: "link", href, text }
 *      | { type: "bold" | "italic" | "strike" | "code", children: Node[] }
 *      | { type: "mono", text }
 *
 * Rules as WhatsApp applies them: *bold*, _italic_, ~strike~, `code` on one line, ```mono``` across
 * lines; a marker opens only at the start of the text or after a non-alphanumeric character, and
 * closes only before the end or a non-alphanumeric character, with no space just inside it, so
 * snake_case_names and 2*3*4 stay as typed.
 */

const INLINE = { "*": "bold", _: "italic", "~": "strike", "`": "code" };
const WORD = /[\p{L}\p{N}]/u;
const SPACE = /\s/u;
// Links are cut out before formatting and put back afterwards, so the underscores and tildes of a
// URL never open a format, while a URL can still sit inside *bold*. The two private-use characters
// delimit a placeholder; the same characters arriving in a message are replaced first.
const HOLE_OPEN = "\uE000";
const HOLE_CLOSE = "\uE001";
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]*[^\s<>".,:;'!?)\]*_~]/giu;

/** @param {string} text @returns {Node[]} */
export function parseWhatsApp(text) {
  const nodes = [];
  const source = String(text).replace(/[\uE000\uE001]/gu, "\uFFFD");
  const mono = /```([\s\S]+?)```/gu;
  let last = 0;
  for (const match of source.matchAll(mono)) {
    nodes.push(...parseLines(source.slice(last, match.index)));
    nodes.push({ type: "mono", text: match[1] });
    last = match.index + match[0].length;
  }
  nodes.push(...parseLines(source.slice(last)));
  return nodes;
}

function parseLines(text) {
  if (text === "") return [];
  const nodes = [];
  text.split("\n").forEach((line, index) => {
    if (index > 0) nodes.push({ type: "br" });
    const links = [];
    const holed = line.replace(URL_PATTERN, (url) => {
      links.push(url);
      return `${HOLE_OPEN}${links.length - 1}${HOLE_CLOSE}`;
    });
    nodes.push(...parseInline(holed, links));
  });
  return nodes;
}

function parseInline(text, links) {
  const nodes = [];
  let plainStart = 0;
  let i = 0;
  while (i < text.length) {
    const kind = INLINE[text[i]];
    const close = kind ? closingIndex(text, i) : -1;
    if (close === -1) {
      i += 1;
      continue;
    }
    pushPlain(nodes, text.slice(plainStart, i), links);
    const inner = text.slice(i + 1, close);
    nodes.push(
      kind === "code"
        ? { type: "code", children: expandLinks(inner, links) }
        : { type: kind, children: parseInline(inner, links) },
    );
    i = close + 1;
    plainStart = i;
  }
  pushPlain(nodes, text.slice(plainStart), links);
  return nodes;
}

/** The index of the marker closing the one at `open`, or -1 when it opens nothing. */
function closingIndex(text, open) {
  const marker = text[open];
  const before = text[open - 1];
  const after = text[open + 1];
  if (before !== undefined && WORD.test(before)) return -1;
  if (after === undefined || SPACE.test(after) || after === marker) return -1;
  for (let j = open + 2; j < text.length; j += 1) {
    if (text[j] !== marker) continue;
    const next = text[j + 1];
    if (!SPACE.test(text[j - 1]) && (next === undefined || !WORD.test(next))) return j;
  }
  return -1;
}

function pushPlain(nodes, text, links) {
  if (text !== "") nodes.push(...expandLinks(text, links));
}

function expandLinks(text, links) {
  const nodes = [];
  const hole = new RegExp(`${HOLE_OPEN}(\\d+)${HOLE_CLOSE}`, "gu");
  let last = 0;
  for (const match of text.matchAll(hole)) {
    if (match.index > last) nodes.push({ type: "text", text: text.slice(last, match.index) });
    const url = links[Number(match[1])];
    nodes.push({ type: "link", href: url, text: url });
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push({ type: "text", text: text.slice(last) });
  return nodes;
}

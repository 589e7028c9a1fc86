import assert from "node:assert/strict";
import { test } from "node:test";
import { type FormattedNode, parseWhatsApp } from "../public/format.js";

const text = (value: string): FormattedNode => ({ type: "text", text: value });

test("bold, italic, strike and inline code, nested where WhatsApp nests them", () => {
  assert.deepEqual(parseWhatsApp("*Gift* for _Ana_ ~later~ `A-1`"), [
    { type: "bold", children: [text("Gift")] },
    text(" for "),
    { type: "italic", children: [text("Ana")] },
    text(" "),
    { type: "strike", children: [text("later")] },
    text(" "),
    { type: "code", children: [text("A-1")] },
  ]);
  assert.deepEqual(parseWhatsApp("*_both_*"), [
    { type: "bold", children: [{ type: "italic", children: [text("both")] }] },
  ]);
});

test("markers inside words or next to a space stay as typed", () => {
  for (const typed of ["snake_case_name", "2*3*4", "* not bold*", "*not bold *", "a*b*"]) {
    assert.deepEqual(parseWhatsApp(typed), [text(typed)], typed);
  }
});

test("line breaks, and a mono block that spans lines without formatting inside", () => {
  assert.deepEqual(parseWhatsApp("one\ntwo ```a\n*b*```"), [
    text("one"),
    { type: "br" },
    text("two "),
    { type: "mono", text: "a\n*b*" },
  ]);
});

test("links keep their underscores, lose trailing punctuation, and can sit inside bold", () => {
  const url = "https://pay.example/checkout/a_b_c";
  assert.deepEqual(parseWhatsApp(`*Pay: ${url}*.`), [
    { type: "bold", children: [text("Pay: "), { type: "link", href: url, text: url }] },
    text("."),
  ]);
  assert.deepEqual(parseWhatsApp("javascript:alert(1) and ftp://x"), [
    text("javascript:alert(1) and ftp://x"),
  ]);
});

test("the placeholder characters the parser uses cannot be smuggled in", () => {
  assert.deepEqual(parseWhatsApp("\uE0000\uE001"), [text("\uFFFD0\uFFFD")]);
});

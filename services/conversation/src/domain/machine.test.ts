import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { type Input, initialConversation, type MessageEvent, transition } from "./machine.ts";
import { parseMessageCatalog, render } from "./messages.ts";

const catalog = parseMessageCatalog(
  JSON.parse(readFileSync(new URL("../../data/messages.json", import.meta.url), "utf8")),
);
const event = (input: Input, shopperName = "Ana"): MessageEvent => ({
  type: "message",
  messageId: "m",
  shopperName,
  input,
});

test("the first message of any kind greets the shopper by name and asks who the gift is for", () => {
  for (const input of [
    { kind: "text", text: "I want a gift" },
    { kind: "media", media: "audio" },
  ] as Input[]) {
    const result = transition(initialConversation("en"), event(input), catalog);
    assert.equal(result.conversation.state, "awaiting_recipient");
    assert.equal(result.outcome, "advanced");
    assert.equal(result.effects.length, 1);
    assert.match(result.effects[0]?.text ?? "", /^Hi Ana!.*Who is this gift for\?/);
  }
});

test("without a profile name the greeting does not invent one; Spanish shops greet in Spanish", () => {
  assert.match(
    transition(initialConversation("en"), event({ kind: "text", text: "hi" }, ""), catalog).effects[0]
      ?.text ?? "",
    /^Hi! /,
  );
  assert.match(
    transition(initialConversation("es"), event({ kind: "text", text: "hola" }), catalog).effects[0]?.text ??
      "",
    /^¡Hola Ana!/,
  );
});

test("a name advances to the theme; anything else re-prompts and stays", () => {
  const asked = { state: "awaiting_recipient" as const, language: "en" };
  const named = transition(asked, event({ kind: "text", text: "  Grandma   Rosa " }), catalog);
  assert.equal(named.conversation.state, "awaiting_theme");
  assert.equal(named.conversation.recipient, "Grandma Rosa");
  assert.match(named.effects[0]?.text ?? "", /A gift for Grandma Rosa/);
  for (const input of [
    { kind: "media", media: "audio" },
    { kind: "text", text: "   " },
    { kind: "text", text: "x".repeat(61) },
  ] as Input[]) {
    const result = transition(asked, event(input), catalog);
    assert.equal(result.outcome, "reprompted");
    assert.equal(result.conversation, asked);
    assert.equal(result.effects.length, 1);
  }
});

test("every language carries every message and placeholders must be filled", () => {
  assert.throws(() => parseMessageCatalog({ en: { greeting: "hi" } }));
  assert.throws(() => render(catalog, "en", "askTheme"), /needs \{recipient\}/);
  assert.throws(() => render(catalog, "fr", "greetingAnonymous"), /no messages for language "fr"/);
});

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, type TestContext, test } from "node:test";
import { ConversationStore } from "@taituri/conversation-service/store";
import { createLogger } from "@taituri/logging";
import { runId } from "@taituri/testing/harness";
import type { BrowserContext, Locator, Page } from "playwright-core";
import { Screenshots } from "./support/browser.ts";
import { SimulatorChat } from "./support/simulator-chat.ts";
import { type SimulatorWorld, simShopper, startSimulatorWorld } from "./support/simulator-world.ts";

/**
 * The shop as a person tries it after `npm start`: headless Chromium at the WhatsApp simulator's
 * page, every service on the real servers, the designs drawn through the simulator's image API,
 * and the payment made on the local checkout page in the same browser. The shopper only clicks
 * and types; what the test asserts is what the page shows, plus the rounds the generation service
 * stored.
 */
const run = runId();
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const shots = new Screenshots(run);
let world: SimulatorWorld;

before(async () => {
  world = await startSimulatorWorld({ id: `simbrowser-${run}`, logger });
});

after(async () => {
  await world?.stop();
});

let shoppers = 0;
const phone = () => {
  shoppers += 1;
  return `3460${run.replace(/\D/g, "0").slice(0, 5)}${String(shoppers).padStart(2, "0")}`;
};
const bsuid = () => `US.${BigInt(`0x${randomUUID().replaceAll("-", "").slice(0, 15)}`)}`;

/** A new browser profile's tab at the simulator, with a new shopper's chat shown. */
async function openChat(
  t: TestContext,
  shopper: { name: string; phone?: string; bsuid?: string },
): Promise<{ chat: SimulatorChat; context: BrowserContext; id: string }> {
  const context = await world.browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  // The page as the test left it, passed or failed: where a failure shows what the shopper saw.
  t.after(async () => {
    await shots.take(t, page, `${shopper.name.toLowerCase()}-last`);
    await context.close();
  });
  // A round of designs takes a few seconds through Kafka and the image API; the default 30 s of a
  // wait is kept for the rest.
  page.setDefaultTimeout(45_000);
  await page.goto(world.sim.url);
  const chat = new SimulatorChat(page);
  const id = await chat.newShopper(shopper);
  return { chat, context, id };
}

/** From "I want a gift" to the confirmation of the brief; returns that bubble. */
async function toConfirmation(chat: SimulatorChat, recipient: string): Promise<Locator> {
  await chat.say("I want a gift");
  await chat.expect("text", /Who is this gift for\? Send me their name\./);
  await chat.say(recipient);
  return afterRecipient(chat, recipient);
}

async function afterRecipient(chat: SimulatorChat, recipient: string): Promise<Locator> {
  const themes = await chat.expect("interactive-list", new RegExp(`A gift for ${recipient}, lovely!`));
  await chat.pick(themes, "Birthday");
  const styles = await chat.expect("interactive-list", /Birthday it is\. Now pick a style\./);
  await chat.pick(styles, "Watercolor");
  return chat.expect(
    "interactive-button",
    new RegExp(`A Birthday design in Watercolor style for ${recipient}, printed on a ceramic mug`),
  );
}

/** The round's three designs, each a real image the page loaded, then the list to choose from. */
async function designs(chat: SimulatorChat): Promise<Locator> {
  const images = await chat.next(3);
  for (const [i, image] of images.entries()) {
    const read = await chat.read(image);
    assert.equal(read.type, "image");
    assert.match(read.text, new RegExp(`Design ${i + 1}`));
    await loaded(chat.page, image.getByTestId("message-image"));
  }
  return chat.expect("interactive-list", /Which one do you like\? Tap to choose, or ask for more designs\./);
}

/** Waits until an <img> has decoded a real picture (not a broken link). */
async function loaded(page: Page, img: Locator): Promise<void> {
  await page.waitForFunction(
    // Runs in the page: an HTMLImageElement there (the tests' TypeScript has no DOM types).
    (el) => {
      const image = el as unknown as { complete: boolean; naturalWidth: number };
      return image.complete && image.naturalWidth > 0;
    },
    await img.elementHandle(),
  );
}

/** Chooses design `n` and answers the address step; returns the bubble with the checkout link. */
async function toCheckout(chat: SimulatorChat, choose: Locator, n: number): Promise<Locator> {
  await chat.pick(choose, `Design ${n}`);
  const countries = await chat.expect("interactive-list", /Which country should we send it to\?/);
  await chat.pick(countries, "Spain");
  for (const [question, answer] of [
    [/Who should the parcel be addressed to\?/, "Rosa Díaz"],
    [/What's the street and number\?/, "Calle Mayor 1"],
    [/Which town or city\?/, "Madrid"],
    [/And the postcode\?/, "28013"],
  ] as const) {
    await chat.expect("text", question);
    await chat.say(answer);
  }
  const check = await chat.expect(
    "interactive-button",
    /Please check where the gift goes:[\s\S]*Rosa Díaz[\s\S]*Calle Mayor 1[\s\S]*28013 Madrid/,
  );
  await chat.tap(check, "Confirm");
  await chat.expect("text", /Great choice! Preparing your checkout…/);
  return chat.expect(
    "cta_url",
    new RegExp(`Your ceramic mug with design ${n}: €19\\.90\\. Tap to pay securely\\.`),
  );
}

/**
 * Opens the checkout link as the shopper would (a tab of the same browser), checks the page, pays,
 * and returns the order number the page shows.
 */
async function payOnCheckout(
  t: TestContext,
  chat: SimulatorChat,
  pay: Locator,
  name: string,
  shot: string,
): Promise<string> {
  const link = pay.getByTestId("cta-link");
  const href = (await link.getAttribute("href")) ?? "";
  assert.match(href, new RegExp(`^${world.stack.payment?.endpoints.http}/checkout/lcs_`));
  const opensTab = (await link.getAttribute("target")) === "_blank";
  const [checkout] = await Promise.all([
    opensTab ? chat.page.waitForEvent("popup") : Promise.resolve(chat.page),
    link.click(),
  ]);
  await checkout.getByRole("heading", { name: "ceramic mug" }).waitFor();
  await checkout.getByText("Total: €19.90").waitFor();
  await loaded(checkout, checkout.getByRole("img", { name: "Your design" }));
  await shots.take(t, checkout, `${shot}-checkout`);
  await checkout.getByRole("button", { name: "Pay" }).click();
  const done = checkout.getByText(/Payment received, thank you\. Your order number is/);
  await done.waitFor();
  const number = ((await done.locator("b").textContent()) ?? "").trim();
  assert.match(number, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
  if (opensTab) await checkout.close();
  else {
    // The checkout replaced the chat in this tab: back to the simulator, and to this shopper's chat.
    await chat.page.goto(world.sim.url);
    await chat.show(name);
  }
  return number;
}

describe("the shop in a browser, through the WhatsApp simulator", { timeout: 10 * 60_000 }, () => {
  test("from 'I want a gift' to the paid confirmation, paying on the checkout page", async (t) => {
    const { chat } = await openChat(t, { name: "Ana", phone: phone() });
    const confirm = await toConfirmation(chat, "Rosa");
    await chat.tap(confirm, "Create designs");
    await chat.expect("text", /Creating your designs/);
    const choose = await designs(chat);
    await shots.publish(t, await shots.take(t, chat.page, "journey-designs"));
    const pay = await toCheckout(chat, choose, 2);
    await shots.take(t, chat.page, "journey-pay-link");
    const number = await payOnCheckout(t, chat, pay, "Ana", "journey");
    const paid = await chat.expect(
      "text",
      new RegExp(`Payment received, thank you! 🎉 Your order number is ${number}\\.`),
    );
    // The ticks: the simulator reported the bot's messages delivered (or read) to ingress.
    await chat.delivered(paid);
    await shots.take(t, chat.page, "journey-paid");
  });

  test("with every webhook delivered twice, the shopper still sees each reply once", async (t) => {
    const { chat, id } = await openChat(t, { name: "Bea", phone: phone() });
    const deliver = chat.page.getByTestId("toggle-deliver");
    await deliver.selectOption("2");
    t.after(() =>
      fetch(`${world.sim.url}/sim/api/toggles`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ deliver: 1 }),
      }),
    );
    await chat.page
      .getByTestId("sim-log")
      .locator('[data-testid="log-line"][data-kind="toggle"]')
      .filter({ hasText: /deliver.*\b2\b/i })
      .waitFor();

    const confirm = await toConfirmation(chat, "Rosa");
    await chat.tap(confirm, "Create designs");
    await chat.expect("text", /Creating your designs/);
    const choose = await designs(chat);
    const pay = await toCheckout(chat, choose, 1);
    const number = await payOnCheckout(t, chat, pay, "Bea", "twice");
    await chat.expect("text", new RegExp(`Your order number is ${number}\\.`));
    // One more message, in the same conversation's order: had any duplicate made a reply of its
    // own, it would come before this answer.
    await chat.say("help");
    await chat.expect("text", /I design personalised gifts/);
    await chat.expect("text", new RegExp(`Your order ${number} is paid\\. Write "restart"`));

    const transcript = await chat.transcript();
    const bot = transcript.filter((b) => b.from === "bot");
    // greeting, themes, styles, confirmation, "creating", 3 designs, the list, country, 4 address
    // questions, the address to check, "preparing", the link, the confirmation, help and where
    // the journey stands.
    assert.equal(bot.length, 20, JSON.stringify(bot.map((b) => b.text.slice(0, 30))));
    assert.equal(new Set(bot.map((b) => b.wamid)).size, bot.length);
    // And the duplicates were really sent: every message of the shopper went to ingress twice.
    const sent = (await simShopper(world.sim, id)).messages.filter((m) => m.from === "shopper");
    // "I want a gift", the name, theme, style, "Create designs", the design, country, 4 answers,
    // "Confirm", "help".
    assert.equal(sent.length, 13);
    for (const m of sent)
      assert.equal(m.attempts, 2, `${m.type} ${m.text ?? ""} delivered ${m.attempts} times`);
  });

  test("a voice note where a name was expected, then a double tap on 'Create designs': one round", async (t) => {
    const { chat, id } = await openChat(t, { name: "Cai", phone: phone() });
    await chat.say("I want a gift");
    await chat.expect("text", /Who is this gift for\?/);
    await chat.voice();
    await chat.expect("text", /I can only read text and buttons here, sorry\./);
    await chat.expect(
      "text",
      /I need the name of the person the gift is for, written as text\. Who is it for\?/,
    );
    await chat.say("Leo");
    const confirm = await afterRecipient(chat, "Leo");
    const go = chat.button(confirm, "Create designs");
    await go.click();
    await go.click();
    // Both taps left the phone: two replies to the same button.
    await chat.bubbles("shopper").and(chat.page.locator('[data-type="button_reply"]')).nth(1).waitFor();
    await chat.expect("text", /Creating your designs/);
    const list = chat.bubbles("bot").filter({ hasText: /Which one do you like\?/ });
    await list.first().waitFor();
    await chat.say("help");
    await chat
      .bubbles("bot")
      .filter({ hasText: /I design personalised gifts/ })
      .waitFor();
    await shots.take(t, chat.page, "double-tap");

    const images = chat.bubbles("bot").and(chat.page.locator('[data-type="image"]'));
    assert.equal(await images.count(), 3, "one round of three designs");
    assert.equal(
      await chat
        .bubbles("bot")
        .filter({ hasText: /Creating your designs/ })
        .count(),
      1,
    );
    const shopper = await simShopper(world.sim, id);
    const conversationId = `${shopper.phoneNumberId}:${shopper.waId}`;
    // The conversation as its service reads it (the head and the versions written since).
    const conversation = await new ConversationStore(world.db).load(conversationId);
    assert.equal(conversation?.conversation.round, 1, "the conversation started one round");
    const rounds = await world.db.collection("generation_rounds").find({ conversationId }).toArray();
    assert.equal(rounds.length, 1);
    const calls = await world.db
      .collection("generation_provider_calls")
      .countDocuments({ roundId: rounds[0]?._id });
    assert.equal(calls, 1, "one call to the image provider");
  });

  test("a shopper known only by a BSUID, with no phone number: designs and payment", async (t) => {
    const userId = bsuid();
    const { chat, id } = await openChat(t, { name: "Dee", bsuid: userId });
    const shopper = await simShopper(world.sim, id);
    assert.equal(shopper.userId, userId);
    assert.equal(shopper.waId, undefined);
    const confirm = await toConfirmation(chat, "Rosa");
    await chat.tap(confirm, "Create designs");
    await chat.expect("text", /Creating your designs/);
    const choose = await designs(chat);
    await shots.take(t, chat.page, "bsuid-designs");
    const pay = await toCheckout(chat, choose, 3);
    const number = await payOnCheckout(t, chat, pay, "Dee", "bsuid");
    await chat.expect("text", new RegExp(`Your order number is ${number}\\.`));
    // The conversation is the BSUID's: no phone number was ever needed.
    const conversationId = `${shopper.phoneNumberId}:${userId}`;
    const conversation = await new ConversationStore(world.db).load(conversationId);
    assert.equal(conversation?.conversation.state, "paid");
    assert.deepEqual(conversation?.contact, { userId });
  });
});

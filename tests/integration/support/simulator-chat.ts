import assert from "node:assert/strict";
import type { Locator, Page } from "playwright-core";

/** One bubble of the chat as the shopper reads it. */
export interface Bubble {
  from: "shopper" | "bot";
  type: string;
  text: string;
  wamid: string;
}

const exactly = (text: string) => new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`);

/**
 * A person at the WhatsApp simulator's page, through the data-testid contract of its UI
 * (packages/simulator/public): creates a shopper, types, taps, and reads the bot's bubbles in
 * order. Every wait is one of Playwright's auto-waiting locators: nothing sleeps.
 */
export class SimulatorChat {
  readonly page: Page;
  /** Bot bubbles of the current shopper already returned by `next`. */
  #seen = 0;

  constructor(page: Page) {
    this.page = page;
  }

  /** The bubbles of the chat shown, from whoever. */
  bubbles(from?: "shopper" | "bot"): Locator {
    const who = from ? `[data-from="${from}"]` : "";
    return this.page.getByTestId("chat").locator(`[data-testid="message"]${who}`);
  }

  /**
   * Creates a shopper with the UI's form (a phone number, a BSUID or both), shows their chat and
   * returns the simulator's id for them.
   */
  async newShopper(shopper: { name: string; phone?: string; bsuid?: string }): Promise<string> {
    await this.page.getByTestId("new-shopper").click();
    await this.page.getByTestId("new-shopper-name").fill(shopper.name);
    if (shopper.phone) await this.page.getByTestId("new-shopper-phone").fill(shopper.phone);
    if (shopper.bsuid) await this.page.getByTestId("new-shopper-bsuid").fill(shopper.bsuid);
    await this.page.getByTestId("new-shopper-create").click();
    const id = await this.show(shopper.name);
    this.#seen = await this.bubbles("bot").count();
    return id;
  }

  /** Shows the chat of the shopper named `name` (e.g. after the page was loaded again); returns their id. */
  async show(name: string): Promise<string> {
    const tab = this.page.getByTestId("shopper-tab").filter({ hasText: name });
    await tab.click();
    await this.page
      .locator('[data-testid="shopper-tab"][aria-selected="true"]')
      .filter({ hasText: name })
      .waitFor();
    const id = await tab.getAttribute("data-shopper");
    assert.ok(id, "a shopper tab names its shopper (data-shopper)");
    return id;
  }

  /** Types `text` and sends it; returns once its bubble is in the chat. */
  async say(text: string): Promise<void> {
    const before = await this.bubbles("shopper").count();
    await this.page.getByTestId("composer-input").fill(text);
    await this.page.getByTestId("composer-send").click();
    await this.bubbles("shopper").nth(before).waitFor();
  }

  /** Sends a voice note (the simulator's sample recording). */
  async voice(): Promise<void> {
    const before = await this.bubbles("shopper").count();
    await this.page.getByTestId("send-voice").click();
    await this.bubbles("shopper").nth(before).waitFor();
  }

  /** Waits for the bot's next `n` bubbles and returns them. */
  async next(n = 1): Promise<Locator[]> {
    const from = this.#seen;
    await this.bubbles("bot")
      .nth(from + n - 1)
      .waitFor();
    this.#seen = from + n;
    return Array.from({ length: n }, (_, i) => this.bubbles("bot").nth(from + i));
  }

  /** The next bot bubble, which must be of `type` and read as `text`. */
  async expect(type: string, text: RegExp): Promise<Locator> {
    const [bubble] = await this.next();
    assert.ok(bubble);
    const read = await this.read(bubble);
    assert.equal(read.type, type, `the bot's bubble ${JSON.stringify(read)}`);
    assert.match(read.text, text);
    return bubble;
  }

  async read(bubble: Locator): Promise<Bubble> {
    const text = bubble.getByTestId("message-text");
    return {
      from: (await bubble.getAttribute("data-from")) as Bubble["from"],
      type: (await bubble.getAttribute("data-type")) ?? "",
      text: (await text.count()) > 0 ? ((await text.first().textContent()) ?? "") : "",
      wamid: (await bubble.getAttribute("data-wamid")) ?? "",
    };
  }

  /** Every bubble of the chat shown, in order. */
  async transcript(): Promise<Bubble[]> {
    const all = await this.bubbles().all();
    return Promise.all(all.map((bubble) => this.read(bubble)));
  }

  /** Taps the reply button titled `title` of a bot bubble. */
  async tap(bubble: Locator, title: string): Promise<void> {
    await this.button(bubble, title).click();
  }

  button(bubble: Locator, title: string): Locator {
    return bubble.getByTestId("reply-button").filter({ hasText: exactly(title) });
  }

  /** Opens a bot bubble's list and taps the row titled `title`. */
  async pick(bubble: Locator, title: string): Promise<void> {
    await bubble.getByTestId("list-open").click();
    // The open list may be drawn over the chat rather than inside the bubble: the row is the visible one.
    await this.page
      .getByTestId("list-row")
      .filter({ hasText: exactly(title), visible: true })
      .click();
  }

  /** Waits until a bot bubble's ticks say it was delivered (or read). */
  async delivered(bubble: Locator): Promise<void> {
    await bubble.and(this.page.locator(':is([data-status="delivered"], [data-status="read"])')).waitFor();
  }
}

import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { CHROMIUM_FLAGS, ensureChromium } from "@taituri/devenv/tools";
import { type Browser, chromium, type Page } from "playwright-core";

/**
 * Debian's Chromium (installed by ensureChromium when missing; never a browser download), headless,
 * driven by playwright-core. Playwright gives each launch a new, empty profile folder itself and
 * refuses `--user-data-dir` in `args`; `--headless` is its `headless` option.
 */
export async function launchChromium(): Promise<Browser> {
  const { executablePath } = await ensureChromium();
  return chromium.launch({
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS.filter((flag) => flag !== "--headless"),
  });
}

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Where the README's picture of the simulator is kept: rewritten only with UPDATE_SCREENSHOTS=1. */
export const README_SCREENSHOT = here("../../../docs/images/simulator.png");

/**
 * Screenshots of one run, numbered in the order taken, under tests/integration/screenshots/<run>/
 * (not committed); each test names the ones it took in its diagnostics, so a failed run shows
 * where to look.
 */
export class Screenshots {
  readonly dir: string;
  #taken = 0;

  constructor(run: string) {
    this.dir = here(`../screenshots/${run}/`);
  }

  async take(t: TestContext, page: Page, name: string): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    this.#taken += 1;
    const path = join(this.dir, `${String(this.#taken).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path });
    t.diagnostic(`screenshot: ${path}`);
    return path;
  }

  /** Copies a screenshot to the README's, when asked to (UPDATE_SCREENSHOTS=1): a picture changes on purpose only. */
  async publish(t: TestContext, path: string): Promise<void> {
    if (process.env.UPDATE_SCREENSHOTS !== "1") return;
    await mkdir(join(README_SCREENSHOT, ".."), { recursive: true });
    await copyFile(path, README_SCREENSHOT);
    t.diagnostic(`README screenshot updated: ${README_SCREENSHOT}`);
  }
}

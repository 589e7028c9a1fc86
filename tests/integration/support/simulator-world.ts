import { freePort, type Infra, startInfra } from "@taituri/devenv";
import type { Logger } from "@taituri/logging";
import { type Shopper, type Simulator, startSimulator } from "@taituri/simulator";
import { type Db, MongoClient } from "mongodb";
import type { Browser } from "playwright-core";
import { launchChromium } from "./browser.ts";
import { type Stack, startStack } from "./stack.ts";

/**
 * Everything a person meets at `npm start`, in this process: the real servers, every service
 * (ingress, conversation, the real generation service and limiter, payment with its local
 * checkout), the WhatsApp simulator on both of Meta's sides (webhooks to ingress, the Graph API
 * the dispatcher calls, and the image API the generation service calls), and headless Chromium.
 */
export interface SimulatorWorld {
  infra: Infra;
  stack: Stack;
  sim: Simulator;
  browser: Browser;
  db: Db;
  stop(): Promise<void>;
}

/** The app secret the simulator signs its webhooks with, and ingress checks them against. */
const APP_SECRET = "simulator-browser-secret";
/** The bearer the dispatcher presents and the simulator's Graph API expects. */
const ACCESS_TOKEN = "simulator-access-token";
/** The key the generation service presents to the simulator's images API. */
const OPENAI_KEY = "simulator-openai-key";

export async function startSimulatorWorld(options: { id: string; logger: Logger }): Promise<SimulatorWorld> {
  const { logger } = options;
  const stopping: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const close of stopping.splice(0).reverse()) await close();
  };
  try {
    // First: a machine without Chromium fails here, in seconds, before any server starts.
    const browser = await launchChromium();
    stopping.push(() => browser.close());
    const infra = await startInfra();
    stopping.push(() => infra.stop());
    // The simulator must know ingress's webhook before ingress starts, and ingress the simulator's
    // Graph API: ingress's port is chosen first, as `npm start` fixes it.
    const ingressPort = await freePort();
    const sim = await startSimulator({
      webhookUrl: `http://127.0.0.1:${ingressPort}/webhook`,
      appSecret: APP_SECRET,
      accessToken: ACCESS_TOKEN,
      openaiApiKey: OPENAI_KEY,
      logger,
    });
    stopping.push(() => sim.close());
    const stack = await startStack({
      id: options.id,
      infra,
      graph: { url: sim.graphUrl },
      logger,
      secret: APP_SECRET,
      generation: true,
      payment: true,
      // The conversation's time is the simulator's clock, which the page can move on (+3 hours).
      conversation: { DEV_CLOCK_URL: sim.clockUrl },
      generationSettings: {
        // The OpenAI provider, pointed at the simulator's images API: the designs come back over
        // HTTP, and its image toggle (fail, time out) reaches the real provider code.
        IMAGE_PROVIDER: "openai",
        OPENAI_BASE_URL: sim.openaiBaseUrl,
        OPENAI_API_KEY: OPENAI_KEY,
      },
      ingressSettings: { INGRESS_PORT: String(ingressPort), WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN },
    });
    stopping.push(() => stack.stop());
    const mongo = new MongoClient(infra.mongo.url);
    stopping.push(() => mongo.close());
    return { infra, stack, sim, browser, db: mongo.db(stack.dbName), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function simShopper(sim: Simulator, id: string): Promise<Shopper> {
  const response = await fetch(`${sim.url}/sim/api/state`);
  if (!response.ok) throw new Error(`GET /sim/api/state answered ${response.status}`);
  const state = (await response.json()) as { shoppers: Shopper[] };
  const shopper = state.shoppers.find((s) => s.id === id);
  if (!shopper) throw new Error(`the simulator has no shopper ${id}`);
  return shopper;
}

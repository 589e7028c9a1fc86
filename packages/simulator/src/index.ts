import type { AddressInfo } from "node:net";
import { schema as generationSchema } from "@taituri/generation-service/config";
import type { Logger } from "@taituri/logging";
import { META_EXAMPLE_NUMBER } from "./catalog-numbers.ts";
import { LocalImages } from "./images.ts";
import type { ThroughputOptions } from "./limits.ts";
import { buildServer } from "./server.ts";
import { SimulatorCore } from "./simulator.ts";
import type { BusinessNumber } from "./types.ts";

export { catalogNumbers } from "./catalog-numbers.ts";
export type { BusinessNumber, ChatMessage, LogLine, Shopper, Toggles } from "./types.ts";

export interface SimulatorOptions {
  /** 0 (the default): an ephemeral port. */
  port?: number;
  host?: string;
  /** Ingress's POST /webhook. */
  webhookUrl: string;
  /** Signs the webhooks (X-Hub-Signature-256), as the app secret does at Meta. */
  appSecret: string;
  /** The bearer the Graph API side expects; any bearer when unset. */
  accessToken?: string;
  /** The business numbers shoppers write to (from the catalog); one made-up number when unset. */
  businessNumbers?: BusinessNumber[];
  /** Jaeger, for trace links: its UI when `jaegerUi`, else its query API. */
  jaegerUrl?: string;
  jaegerUi?: boolean;
  /** Waits between webhook retries, in ms: Meta's backoff (minutes to hours over 7 days), compressed. */
  retrySchedule?: number[];
  /** A webhook not answered within this is retried (ms). */
  webhookTimeoutMs?: number;
  /** The key the OpenAI-compatible images endpoint expects (the generation service's OPENAI_API_KEY). */
  openaiApiKey?: string;
  /** The generation service's prompt templates, to read a design's brief back from its prompt. */
  promptsFile?: string;
  /** Template names Meta files as authentication templates: refused for BSUID recipients (131062). */
  authenticationTemplates?: string[];
  /** Meta's throughput limits, for tests that need them lower. */
  throughput?: ThroughputOptions;
  /** Pauses before each status webhook of a bot message (sent, delivered, read), in ms. */
  statusDelaysMs?: { sent: number; delivered: number; read: number };
  logger?: Logger;
}

export interface Simulator {
  /** The UI, e.g. http://127.0.0.1:3900. */
  url: string;
  /** What WHATSAPP_API_URL must be set to. */
  graphUrl: string;
  /** What OPENAI_BASE_URL must be set to for the simulated image provider. */
  openaiBaseUrl: string;
  /** DEV_CLOCK_URL for the services: the simulated clock's offset. */
  clockUrl: string;
  close(): Promise<void>;
}

const GRAPH_VERSION = "v23.0";
export const LOCAL_OPENAI_KEY = "local-openai-key";

/**
 * Starts the WhatsApp simulator: the chat UI at `/`, Meta's Graph API for the dispatcher at
 * `graphUrl`, webhooks to `webhookUrl`, an OpenAI-compatible images endpoint, and the clock the
 * services follow in development. Dev tooling: nothing in it is meant for a deployment.
 */
export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  const core = new SimulatorCore({
    webhookUrl: options.webhookUrl,
    appSecret: options.appSecret,
    businessNumbers: options.businessNumbers?.length ? options.businessNumbers : [META_EXAMPLE_NUMBER],
    // Meta retries for days, less often each time; a few seconds to half a minute shows the same here.
    retrySchedule: options.retrySchedule ?? [1000, 2000, 4000, 8000, 16000],
    webhookTimeoutMs: options.webhookTimeoutMs ?? 5000,
    ...(options.jaegerUrl
      ? { jaeger: { url: options.jaegerUrl.replace(/\/+$/, ""), ui: options.jaegerUi ?? false } }
      : {}),
    authenticationTemplates: options.authenticationTemplates ?? [],
    ...(options.throughput ? { throughput: options.throughput } : {}),
    statusDelaysMs: options.statusDelaysMs ?? { sent: 150, delivered: 600, read: 800 },
    ...(options.logger ? { logger: options.logger } : {}),
  });
  let baseUrl = "";
  const app = await buildServer({
    core,
    images: new LocalImages(options.promptsFile ?? generationSchema.shape.PROMPTS_FILE.parse(undefined)),
    accessToken: options.accessToken,
    openaiApiKey: options.openaiApiKey ?? LOCAL_OPENAI_KEY,
    graphVersion: GRAPH_VERSION,
    baseUrl: () => baseUrl,
  });
  await app.listen({ port: options.port ?? 0, host: options.host ?? "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  const host = options.host && options.host !== "0.0.0.0" ? options.host : "127.0.0.1";
  baseUrl = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    url: baseUrl,
    graphUrl: `${baseUrl}/${GRAPH_VERSION}`,
    openaiBaseUrl: `${baseUrl}/v1`,
    clockUrl: `${baseUrl}/sim/api/clock`,
    async close() {
      await core.close();
      await app.close();
    },
  };
}

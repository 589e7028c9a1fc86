import { readFile } from "node:fs/promises";
import { topicNames } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import { connectBackbone, type RunningService, type StartOptions, serveOps } from "@taituri/service";
import { createLimiterClient, type RoundLimiter, tokenSourceFor } from "./adapters/limiter.ts";
import { createLocalProvider } from "./adapters/local.ts";
import { createOpenAIProvider } from "./adapters/openai.ts";
import type { ImageProvider } from "./adapters/provider.ts";
import { generationIndexes, RoundStore } from "./adapters/store.ts";
import { drainMs, type GenerationConfig } from "./config.ts";
import { createRoundHandler } from "./consumers/rounds.ts";
import { parsePriceTable } from "./domain/cost.ts";
import { type PromptTemplates, parsePromptTemplates } from "./domain/prompt.ts";
import { createMetrics } from "./metrics.ts";

export interface GenerationOptions extends StartOptions {
  /** Replaces the provider IMAGE_PROVIDER names (benchmarks, tests). */
  provider?: ImageProvider;
  /** Replaces the gRPC limiter client (benchmarks). */
  limiter?: RoundLimiter;
}

export function createProvider(config: GenerationConfig, templates: PromptTemplates): ImageProvider {
  if (config.IMAGE_PROVIDER === "openai")
    return createOpenAIProvider({
      apiKey: config.OPENAI_API_KEY ?? "",
      baseURL: config.OPENAI_BASE_URL,
      model: config.OPENAI_IMAGE_MODEL,
      size: config.OPENAI_IMAGE_SIZE,
      quality: config.OPENAI_IMAGE_QUALITY,
      timeoutMs: config.OPENAI_TIMEOUT_MS,
      templates,
    });
  return createLocalProvider({
    templates,
    size: config.LOCAL_IMAGE_SIZE,
    delayMs: config.LOCAL_PROVIDER_DELAY_MS,
  });
}

/**
 * The generation service: consumes generation requests, asks the limiter, calls the image
 * provider, stores the images in GridFS and publishes each round's result; serves its ops endpoints.
 */
export async function startGenerationService(
  config: GenerationConfig,
  logger: Logger,
  options: GenerationOptions = {},
): Promise<RunningService> {
  const templates = parsePromptTemplates(JSON.parse(await readFile(config.PROMPTS_FILE, "utf8")));
  const prices = parsePriceTable(JSON.parse(await readFile(config.PRICES_FILE, "utf8")));
  const provider = options.provider ?? createProvider(config, templates);
  const limiter =
    options.limiter ??
    createLimiterClient({
      address: config.LIMITER_URL,
      ruleSet: config.LIMITER_RULE_SET,
      timeoutMs: config.LIMITER_TIMEOUT_MS,
      token: tokenSourceFor(config),
    });
  if (!options.limiter && !config.OIDC_TOKEN_FILE && !config.OIDC_CLIENT_SECRET)
    logger.warn("no OIDC_TOKEN_FILE or OIDC_CLIENT_SECRET: every round will fail closed at the limiter");

  const backbone = await connectBackbone("generation", config, logger, { indexes: generationIndexes });
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const store = new RoundStore(backbone.mongo.db);
  const images = new ImageStore(backbone.mongo.db);
  const handler = createRoundHandler({
    store,
    images,
    provider,
    limiter,
    publisher: backbone.kafka.producer,
    topics,
    prices,
    metrics: createMetrics(backbone.registry),
    logger,
    leaseMs: config.GENERATION_LEASE_MS,
    maxAttempts: config.GENERATION_MAX_ATTEMPTS,
    maxDesigns: config.GENERATION_MAX_DESIGNS,
    limiterMaxCost: config.LIMITER_MAX_COST,
    maxRetries: config.IMAGE_PROVIDER === "openai" ? config.OPENAI_MAX_RETRIES : 0,
    retryBaseMs: config.OPENAI_RETRY_BASE_MS,
    callTimeoutMs:
      config.IMAGE_PROVIDER === "openai" ? config.OPENAI_TIMEOUT_MS : config.LOCAL_PROVIDER_DELAY_MS,
  });
  // Rounds wait for Kafka and MongoDB; the limiter is asked per round, and a round it cannot answer
  // fails closed (consumers/rounds.ts), so the consumer does not wait for it.
  const work = backbone.whenUp("consumer", ["kafka", "mongodb"], async () => {
    const consumer = await backbone.consume({
      group: "generation",
      topics: [topics.generationRequests],
      partitionsConsumedConcurrently: config.CONSUMER_CONCURRENCY,
      // A round held by a crashed worker is retried until its lease expires: wait up to 5 s between looks.
      retryMaxMs: 5000,
      handle: (message) => handler.handle(message),
    });
    logger.info({ provider: provider.name, model: provider.model }, "generation consumer started");
    // Rounds past their retention go a batch at a time; a full batch means more may wait, so the
    // next batch follows at once rather than after GENERATION_RETENTION_SWEEP_MS. Any replica may
    // sweep: a round deleted by another is simply not found again.
    const retentionMs = config.GENERATION_RETENTION_DAYS * 24 * 3600 * 1000;
    let sweeping: Promise<unknown> = Promise.resolve();
    let stopped = false;
    const sweep = async () => {
      for (;;) {
        const swept = await store.sweepExpired(images, new Date(Date.now() - retentionMs), 100);
        const { examined, ...removed } = swept;
        if (removed.rounds + removed.markers + removed.images > 0)
          logger.info(removed, "rounds past their retention deleted");
        if (examined < 100 || stopped) return;
      }
    };
    const sweeper = setInterval(() => {
      sweeping = sweeping.then(() =>
        sweep().catch((error: unknown) => logger.warn({ err: error }, "retention sweep failed; will retry")),
      );
    }, config.GENERATION_RETENTION_SWEEP_MS);
    return async () => {
      stopped = true;
      clearInterval(sweeper);
      await sweeping;
      await consumer.stop();
    };
  });
  return serveOps(
    backbone,
    { port: config.GENERATION_PORT, host: config.GENERATION_HOST },
    async () => {
      // Stop claiming at once; the consumer's stop then waits for the rounds in hand, which drain
      // lets finish, or cancels and hands back, by its deadline.
      const draining = handler.drain(drainMs(config));
      await work.stop();
      await draining;
      limiter.close();
    },
    options,
  );
}

import { readFile } from "node:fs/promises";
import { topicNames } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import {
  connectBackbone,
  type RunningService,
  type StartOptions,
  serveOps,
  startServiceClock,
} from "@taituri/service";
import { Counter, Gauge } from "prom-client";
import { parse } from "yaml";
import { CacheForgetWatcher } from "./adapters/cache-epochs.ts";
import { ConversationStore, conversationIndexes } from "./adapters/store.ts";
import type { ConversationConfig } from "./config.ts";
import { createConversationHandler } from "./consumers/events.ts";
import { catalogProblems, parseCatalog } from "./domain/catalog.ts";
import { parseCountries } from "./domain/countries.ts";
import { parseMessageCatalog } from "./domain/messages.ts";

/**
 * Builds and starts the conversation service: one consumer for everything that moves a journey
 * (the shopper's messages, generation results, payment events), the watchdog poller, the check
 * for deleted conversations to forget, and the ops server. The ops server listens at once; the
 * rest starts once Kafka and MongoDB are there.
 */
export async function startConversationService(
  config: ConversationConfig,
  logger: Logger,
  options: StartOptions = {},
): Promise<RunningService> {
  const catalog = parseCatalog(parse(await readFile(config.CATALOG_FILE, "utf8")));
  const messages = parseMessageCatalog(JSON.parse(await readFile(config.MESSAGES_FILE, "utf8")));
  for (const shop of catalog.shops) {
    if (!messages[shop.language])
      throw new Error(`shop ${shop.id} speaks "${shop.language}", which ${config.MESSAGES_FILE} lacks`);
  }
  const countries = parseCountries(JSON.parse(await readFile(config.CONVERSATION_COUNTRIES_FILE, "utf8")));
  const problems = catalogProblems(catalog, countries);
  if (problems.length > 0)
    throw new Error(
      `${config.CATALOG_FILE} and ${config.CONVERSATION_COUNTRIES_FILE}: ${problems.join("; ")}`,
    );
  const backbone = await connectBackbone("conversation", config, logger, { indexes: conversationIndexes });
  const clock = await startServiceClock(config.DEV_CLOCK_URL, logger);
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const store = new ConversationStore(backbone.mongo.db, {
    cacheSize: config.CONVERSATION_CACHE_SIZE,
    insertIntervalMs: config.MONGO_INSERT_INTERVAL_MS,
  });
  const forgets = new Counter({
    name: "conversation_cache_forgets_total",
    help: "Times this replica dropped every conversation it kept in memory, told that some were deleted",
    registers: [backbone.registry],
  });
  const handler = createConversationHandler({
    store,
    publisher: backbone.kafka.producer,
    topics,
    catalog,
    messages,
    countries,
    sessionTtlMs: config.SESSION_TTL_MS,
    generationDeadlineMs: config.GENERATION_DEADLINE_MS,
    logger,
    registry: backbone.registry,
    now: clock.now,
    ...(config.CONVERSATION_CRASH_AT
      ? {
          onStep: (step: string) => {
            if (step !== config.CONVERSATION_CRASH_AT) return;
            logger.warn({ step }, "CONVERSATION_CRASH_AT reached: killing this process");
            process.kill(process.pid, "SIGKILL");
          },
        }
      : {}),
  });
  // Erases and the retention sweep delete conversations this replica may remember: it drops them all
  // when told (adapters/cache-epochs.ts). Started before consuming, so that an earlier deletion is
  // not news and an erase from now on waits for this replica.
  const watcher = new CacheForgetWatcher(backbone.mongo.db, () => {
    handler.forgetRelayed();
    return store.forgetCached();
  });
  // Counted at each scrape: a deadline passed by more than a poll and a minute means the watchdog
  // did not fire (the poller is stuck or failing); the alert ConversationsStuckGenerating reads it.
  new Gauge({
    name: "conversation_stuck_generating",
    help: "Conversations still generating a minute or more after their round's deadline",
    registers: [backbone.registry],
    async collect() {
      // Before MongoDB is first reached there is nothing to count, and a scrape must not wait on it.
      if (backbone.dependencies.mongodb.state !== "up") return;
      this.set(
        await store.countStuckGenerating(new Date(clock.now().getTime() - config.TIMER_POLL_MS - 60_000)),
      );
    },
  });
  const work = backbone.whenUp("consumer", ["kafka", "mongodb"], async () => {
    await watcher.start();
    const consumer = await backbone.consume({
      group: "conversation",
      topics: [topics.inbound, topics.generationResults, topics.paymentEvents],
      partitionsConsumedConcurrently: config.CONSUMER_CONCURRENCY,
      keyConcurrency: config.CONSUMER_KEY_CONCURRENCY,
      handle: (message) => handler.handle(message),
    });
    // Watchdogs live in the conversation documents, so any replica may fire them; the claim on
    // "timer:<id>" makes a firing count once even if two replicas find it due together.
    // The same loop sweeps conversations past their retention, at most every
    // CONVERSATION_RETENTION_SWEEP_MS and a batch at a time, so a sweep never delays a watchdog long.
    let polling: Promise<unknown> = Promise.resolve();
    let sweptAt = 0;
    const retentionMs = config.CONVERSATION_RETENTION_DAYS * 24 * 3600 * 1000;
    const sweep = async () => {
      if (Date.now() - sweptAt < config.CONVERSATION_RETENTION_SWEEP_MS) return;
      const { removed, examined } = await store.sweepExpired(new Date(Date.now() - retentionMs), 100);
      // A full batch: more may wait, so the next poll looks again.
      if (examined < 100) sweptAt = Date.now();
      if (removed > 0) logger.info({ removed }, "conversations past their retention deleted");
    };
    const poller = setInterval(() => {
      polling = polling.then(() =>
        handler
          .fireDueTimers()
          .catch((error: unknown) => logger.warn({ err: error }, "firing due timers failed; will retry"))
          .then(sweep)
          .catch((error: unknown) => logger.warn({ err: error }, "retention sweep failed; will retry")),
      );
    }, config.TIMER_POLL_MS);
    // Beside the consumers, never in a message's way: one check at a time, a failed one retried at the next tick.
    let checking: Promise<void> | undefined;
    const cacheCheck = setInterval(() => {
      checking ??= watcher
        .check()
        .then((forgot) => {
          if (!forgot) return;
          forgets.inc();
          logger.info("conversations were deleted; every one kept in memory dropped");
        })
        .catch((error: unknown) =>
          logger.warn({ err: error }, "checking for deleted conversations failed; will retry"),
        )
        .finally(() => {
          checking = undefined;
        });
    }, config.CONVERSATION_CACHE_CHECK_MS);
    return async () => {
      clearInterval(poller);
      await polling;
      await consumer.stop();
      // Until the consumers stop, a deletion must still reach the cache they build on.
      clearInterval(cacheCheck);
      await checking;
      await watcher
        .stop()
        .catch((error: unknown) => logger.warn({ err: error }, "removing this replica's cache ack failed"));
    };
  });
  return serveOps(
    backbone,
    { port: config.CONVERSATION_PORT, host: config.CONVERSATION_HOST },
    async () => {
      await work.stop();
      clock.stop();
    },
    options,
  );
}

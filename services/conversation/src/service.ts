import { readFile } from "node:fs/promises";
import { startConsumer, topicNames } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { ensureIndexes } from "@taituri/mongo";
import { connectBackbone, type RunningService, serveOps } from "@taituri/service";
import { ConversationStore, conversationIndexes } from "./adapters/store.ts";
import type { ConversationConfig } from "./config.ts";
import { createInboundHandler } from "./consumers/inbound.ts";
import { parseMessageCatalog } from "./domain/messages.ts";

/** Builds and starts the conversation service: the inbound consumer and its ops server. */
export async function startConversationService(
  config: ConversationConfig,
  logger: Logger,
): Promise<RunningService> {
  const catalog = parseMessageCatalog(JSON.parse(await readFile(config.MESSAGES_FILE, "utf8")));
  if (!catalog[config.SHOP_LANGUAGE]) {
    throw new Error(`SHOP_LANGUAGE "${config.SHOP_LANGUAGE}" is not in ${config.MESSAGES_FILE}`);
  }
  const backbone = await connectBackbone("conversation", config, logger);
  await ensureIndexes(backbone.mongo.db, conversationIndexes);
  const consumer = await startConsumer({
    kafka: backbone.kafka.kafka,
    groupId: `${config.KAFKA_TOPIC_PREFIX}conversation`,
    topics: [topicNames(config.KAFKA_TOPIC_PREFIX).inbound],
    producer: backbone.kafka.producer,
    logger,
    partitionsConsumedConcurrently: config.CONSUMER_CONCURRENCY,
    registry: backbone.registry,
    handle: createInboundHandler({
      store: new ConversationStore(backbone.mongo.db),
      publisher: backbone.kafka.producer,
      topics: topicNames(config.KAFKA_TOPIC_PREFIX),
      catalog,
      language: config.SHOP_LANGUAGE,
      logger,
      registry: backbone.registry,
    }),
  });
  return serveOps(backbone, { port: config.CONVERSATION_PORT, host: config.CONVERSATION_HOST }, () =>
    consumer.stop(),
  );
}

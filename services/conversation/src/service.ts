import { readFile } from "node:fs/promises";
import { connectKafka, startConsumer, topicNames, topicSpecs } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { connectMongo, ensureIndexes } from "@taituri/mongo";
import { createOpsServer, createRegistry, type Registry } from "@taituri/ops";
import { ConversationStore, conversationIndexes } from "./adapters/store.ts";
import type { ConversationConfig } from "./config.ts";
import { createInboundHandler } from "./consumers/inbound.ts";
import { parseMessageCatalog } from "./domain/messages.ts";

export interface ConversationService {
  /** Where /healthz, /readyz and /metrics answer. */
  opsUrl: string;
  registry: Registry;
  stop(): Promise<void>;
}

/** Builds and starts the conversation service: the inbound consumer and its ops server. */
export async function startConversationService(
  config: ConversationConfig,
  logger: Logger,
): Promise<ConversationService> {
  const catalog = parseMessageCatalog(JSON.parse(await readFile(config.MESSAGES_FILE, "utf8")));
  if (!catalog[config.SHOP_LANGUAGE]) {
    throw new Error(`SHOP_LANGUAGE "${config.SHOP_LANGUAGE}" is not in ${config.MESSAGES_FILE}`);
  }
  const registry = createRegistry("conversation");
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const mongo = await connectMongo({
    url: config.MONGO_URL,
    dbName: config.MONGO_DB,
    appName: "conversation",
  });
  await ensureIndexes(mongo.db, conversationIndexes);
  const kafka = await connectKafka({
    brokers: config.KAFKA_BROKERS,
    clientId: "conversation",
    logger,
    topics: topicSpecs(topics, config.KAFKA_PARTITIONS),
  });
  const consumer = await startConsumer({
    kafka: kafka.kafka,
    groupId: `${config.KAFKA_TOPIC_PREFIX}conversation`,
    topics: [topics.inbound],
    producer: kafka.producer,
    logger,
    partitionsConsumedConcurrently: config.CONSUMER_CONCURRENCY,
    handle: createInboundHandler({
      store: new ConversationStore(mongo.db),
      publisher: kafka.producer,
      topics,
      catalog,
      language: config.SHOP_LANGUAGE,
      logger,
      registry,
    }),
  });
  const ops = createOpsServer({
    registry,
    checks: { kafka: () => kafka.ping(), mongo: () => mongo.db.command({ ping: 1 }) },
  });
  const opsUrl = await ops.listen({ port: config.CONVERSATION_PORT, host: config.CONVERSATION_HOST });
  return {
    opsUrl,
    registry,
    async stop() {
      await consumer.stop();
      await ops.close();
      await kafka.close();
      await mongo.close();
    },
  };
}

import { connectKafka, topicNames, topicSpecs } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { connectMongo } from "@taituri/mongo";
import { createOpsServer, createRegistry, type Registry } from "@taituri/ops";
import type { GenerationConfig } from "./config.ts";

export interface GenerationService {
  opsUrl: string;
  registry: Registry;
  stop(): Promise<void>;
}

/**
 * The generation service's process: its dependencies (Kafka for rounds, MongoDB for claims and
 * images) and its ops endpoints. The round consumer joins here when generation requests exist.
 */
export async function startGenerationService(
  config: GenerationConfig,
  logger: Logger,
): Promise<GenerationService> {
  const registry = createRegistry("generation");
  const mongo = await connectMongo({ url: config.MONGO_URL, dbName: config.MONGO_DB, appName: "generation" });
  const kafka = await connectKafka({
    brokers: config.KAFKA_BROKERS,
    clientId: "generation",
    logger,
    topics: topicSpecs(topicNames(config.KAFKA_TOPIC_PREFIX), config.KAFKA_PARTITIONS),
  });
  const ops = createOpsServer({
    registry,
    checks: { kafka: () => kafka.ping(), mongo: () => mongo.db.command({ ping: 1 }) },
  });
  const opsUrl = await ops.listen({ port: config.GENERATION_PORT, host: config.GENERATION_HOST });
  return {
    opsUrl,
    registry,
    async stop() {
      await ops.close();
      await kafka.close();
      await mongo.close();
    },
  };
}

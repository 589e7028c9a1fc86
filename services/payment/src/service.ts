import { connectKafka, topicNames, topicSpecs } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { connectMongo } from "@taituri/mongo";
import { createOpsServer, createRegistry, type Registry } from "@taituri/ops";
import type { PaymentConfig } from "./config.ts";

export interface PaymentService {
  opsUrl: string;
  registry: Registry;
  stop(): Promise<void>;
}

/**
 * The payment service's process: its dependencies (Kafka for payment requests and results,
 * MongoDB for orders) and its ops endpoints. The order consumer joins here when orders exist.
 */
export async function startPaymentService(config: PaymentConfig, logger: Logger): Promise<PaymentService> {
  const registry = createRegistry("payment");
  const mongo = await connectMongo({ url: config.MONGO_URL, dbName: config.MONGO_DB, appName: "payment" });
  const kafka = await connectKafka({
    brokers: config.KAFKA_BROKERS,
    clientId: "payment",
    logger,
    topics: topicSpecs(topicNames(config.KAFKA_TOPIC_PREFIX), config.KAFKA_PARTITIONS),
  });
  const ops = createOpsServer({
    registry,
    checks: { kafka: () => kafka.ping(), mongo: () => mongo.db.command({ ping: 1 }) },
  });
  const opsUrl = await ops.listen({ port: config.PAYMENT_PORT, host: config.PAYMENT_HOST });
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

import { connectKafka, type RunningConsumer, startConsumer, topicNames, topicSpecs } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { connectMongo, ensureIndexes } from "@taituri/mongo";
import { createRegistry, type Registry } from "@taituri/ops";
import type { FastifyInstance } from "fastify";
import { GraphApiClient } from "./adapters/graph-api.ts";
import { buildIngressApp } from "./app.ts";
import type { IngressConfig } from "./config.ts";
import { createOutboundHandler, dispatcherIndexes } from "./outbound/dispatcher.ts";

export interface IngressService {
  app: FastifyInstance;
  /** Where the webhook listens, e.g. http://127.0.0.1:3000. */
  url: string;
  registry: Registry;
  stop(): Promise<void>;
}

/**
 * Builds and starts the ingress service from its config: the webhook server and, unless disabled,
 * the outbound dispatcher. Used by main.ts and by integration tests (with port 0).
 */
export async function startIngressService(config: IngressConfig, logger: Logger): Promise<IngressService> {
  const registry = createRegistry("ingress");
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const kafka = await connectKafka({
    brokers: config.KAFKA_BROKERS,
    clientId: "ingress",
    logger,
    topics: topicSpecs(topics, config.KAFKA_PARTITIONS),
  });
  const mongo = config.OUTBOUND_DISPATCHER
    ? await connectMongo({ url: config.MONGO_URL, dbName: config.MONGO_DB, appName: "ingress" })
    : undefined;
  if (mongo) await ensureIndexes(mongo.db, dispatcherIndexes);

  const app = buildIngressApp({
    appSecrets: config.WHATSAPP_APP_SECRET,
    verifyToken: config.WHATSAPP_VERIFY_TOKEN,
    bodyLimitBytes: config.WEBHOOK_BODY_LIMIT_BYTES,
    topics,
    publisher: kafka.producer,
    logger,
    registry,
    checks: {
      kafka: () => kafka.ping(),
      ...(mongo ? { mongo: () => mongo.db.command({ ping: 1 }) } : {}),
    },
  });

  let dispatcher: RunningConsumer | undefined;
  if (mongo) {
    dispatcher = await startConsumer({
      kafka: kafka.kafka,
      groupId: `${config.KAFKA_TOPIC_PREFIX}ingress-dispatcher`,
      topics: [topics.outbound],
      producer: kafka.producer,
      logger: logger.child({ component: "dispatcher" }),
      handle: createOutboundHandler({
        db: mongo.db,
        graph: new GraphApiClient({
          baseUrl: config.WHATSAPP_API_URL,
          accessToken: config.WHATSAPP_ACCESS_TOKEN,
          timeoutMs: config.GRAPH_API_TIMEOUT_MS,
        }),
        logger,
        registry,
        leaseMs: config.OUTBOUND_CLAIM_LEASE_MS,
      }),
    });
  }

  const address = await app.listen({ port: config.INGRESS_PORT, host: config.INGRESS_HOST });
  logger.info({ address }, "ingress listening");
  return {
    app,
    url: address,
    registry,
    async stop() {
      // The webhook first: stop taking what we could no longer store.
      await app.close();
      await dispatcher?.stop();
      await kafka.close();
      await mongo?.close();
    },
  };
}

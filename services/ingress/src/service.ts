import { type RunningConsumer, startConsumer, topicNames } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { ensureIndexes } from "@taituri/mongo";
import { connectBackbone, type RunningService } from "@taituri/service";
import { GraphApiClient } from "./adapters/graph-api.ts";
import { buildIngressApp } from "./app.ts";
import type { IngressConfig } from "./config.ts";
import { createOutboundHandler, dispatcherIndexes } from "./outbound/dispatcher.ts";

/**
 * Builds and starts the ingress service from its config: the webhook server (with the ops routes
 * on the same port) and, unless disabled, the outbound dispatcher. Endpoints: `webhook`, `ops`.
 */
export async function startIngressService(config: IngressConfig, logger: Logger): Promise<RunningService> {
  const backbone = await connectBackbone("ingress", config, logger);
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  await ensureIndexes(backbone.mongo.db, dispatcherIndexes);
  const app = buildIngressApp({
    appSecrets: config.WHATSAPP_APP_SECRET,
    verifyToken: config.WHATSAPP_VERIFY_TOKEN,
    bodyLimitBytes: config.WEBHOOK_BODY_LIMIT_BYTES,
    publishTimeoutMs: config.WEBHOOK_PUBLISH_TIMEOUT_MS,
    recentIdsCapacity: config.WEBHOOK_RECENT_IDS,
    topics,
    publisher: backbone.kafka.producer,
    logger,
    registry: backbone.registry,
    checks: backbone.checks,
  });

  let dispatcher: RunningConsumer | undefined;
  if (config.OUTBOUND_DISPATCHER) {
    dispatcher = await startConsumer({
      kafka: backbone.kafka.kafka,
      groupId: `${config.KAFKA_TOPIC_PREFIX}ingress-dispatcher`,
      topics: [topics.outbound],
      producer: backbone.kafka.producer,
      logger: logger.child({ component: "dispatcher" }),
      handle: createOutboundHandler({
        db: backbone.mongo.db,
        graph: new GraphApiClient({
          baseUrl: config.WHATSAPP_API_URL,
          accessToken: config.WHATSAPP_ACCESS_TOKEN,
          timeoutMs: config.GRAPH_API_TIMEOUT_MS,
        }),
        logger,
        registry: backbone.registry,
        leaseMs: config.OUTBOUND_CLAIM_LEASE_MS,
      }),
    });
  }

  const url = await app.listen({ port: config.INGRESS_PORT, host: config.INGRESS_HOST });
  return {
    endpoints: { webhook: `${url}/webhook`, ops: url },
    registry: backbone.registry,
    async stop() {
      // The webhook first: stop taking what we could no longer store.
      await app.close();
      await dispatcher?.stop();
      await backbone.close();
    },
  };
}

import { httpListenerOptions } from "@taituri/config";
import { type RunningConsumer, topicNames } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import {
  connectBackbone,
  listenOps,
  type RunningService,
  returnStarted,
  type StartedWork,
  type StartOptions,
  startServiceClock,
} from "@taituri/service";
import { Gauge } from "prom-client";
import { GraphApiClient } from "./adapters/graph-api.ts";
import { IngressStore, ingressIndexes } from "./adapters/store.ts";
import { buildIngressApp } from "./app.ts";
import { type IngressConfig, roleSetting } from "./config.ts";
import { CallbackData } from "./outbound/callback-data.ts";
import { createOutboundHandler } from "./outbound/dispatcher.ts";
import { Pacer, paceShare } from "./outbound/pacer.ts";
import { createStatusHandler } from "./statuses/tracker.ts";

/**
 * Builds and starts the ingress service from its config, in its INGRESS_ROLE: the webhook server
 * on INGRESS_PORT (webhook, all), the outbound dispatcher and status tracker (dispatcher, all),
 * and the ops endpoints on INGRESS_OPS_PORT. Endpoints: `webhook` (where it listens for Meta),
 * `ops`. It listens at once, whether Kafka and MongoDB are there or not; the dispatcher starts once
 * both are.
 */
export async function startIngressService(
  config: IngressConfig,
  logger: Logger,
  options: StartOptions = {},
): Promise<RunningService> {
  const backbone = await connectBackbone("ingress", config, logger, { indexes: ingressIndexes });
  const clock = await startServiceClock(config.DEV_CLOCK_URL, logger);
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const listener = httpListenerOptions(config);
  const takesWebhooks = config.INGRESS_ROLE !== "dispatcher";
  const dispatches = config.INGRESS_ROLE !== "webhook";
  const app = takesWebhooks
    ? buildIngressApp({
        appSecrets: roleSetting(config, "WHATSAPP_APP_SECRET"),
        verifyToken: roleSetting(config, "WHATSAPP_VERIFY_TOKEN"),
        bodyLimitBytes: config.WEBHOOK_BODY_LIMIT_BYTES,
        publishTimeoutMs: config.WEBHOOK_PUBLISH_TIMEOUT_MS,
        recentIdsCapacity: config.WEBHOOK_RECENT_IDS,
        listener,
        topics,
        publisher: backbone.kafka.producer,
        logger,
        registry: backbone.registry,
        now: clock.now,
      })
    : undefined;

  let dispatching: StartedWork | undefined;
  let graph: GraphApiClient | undefined;
  if (dispatches) {
    graph = new GraphApiClient({
      baseUrl: config.WHATSAPP_API_URL,
      accessToken: roleSetting(config, "WHATSAPP_ACCESS_TOKEN"),
      timeoutMs: config.GRAPH_API_TIMEOUT_MS,
    });
    const store = new IngressStore(backbone.mongo.db, {
      claimIntervalMs: config.OUTBOUND_CLAIM_INTERVAL_MS,
      recordIntervalMs: config.OUTBOUND_RECORD_INTERVAL_MS,
    });
    // Built once, outside the start that is retried: each registers its metrics, and a second
    // registration throws (a dispatcher whose first start met the broker away never started again).
    const pacer = new Pacer(config.OUTBOUND_RATE_PER_NUMBER);
    const callbackData = new CallbackData(config.PSEUDONYM_KEY);
    const pacingRate = new Gauge({
      name: "outbound_pacing_rate_per_number",
      help: "Messages per second this replica sends per business number: its share of OUTBOUND_RATE_PER_NUMBER, as it owns its share of the outbound partitions",
      registers: [backbone.registry],
    });
    pacingRate.set(pacer.ratePerSecond);
    const outbound = createOutboundHandler({
      store,
      images: new ImageStore(backbone.mongo.db),
      pacer,
      publisher: backbone.kafka.producer,
      topics,
      graph,
      logger,
      registry: backbone.registry,
      leaseMs: config.OUTBOUND_CLAIM_LEASE_MS,
      callbackData,
      now: clock.now,
    });
    const statuses = createStatusHandler({
      store,
      callbackData,
      publisher: backbone.kafka.producer,
      topics,
      registry: backbone.registry,
      now: clock.now,
    });
    dispatching = backbone.whenUp("dispatcher", ["kafka", "mongodb"], async () => {
      const consumers: RunningConsumer[] = [];
      const stopConsumers = async () => {
        for (const consumer of consumers) await consumer.stop();
      };
      try {
        consumers.push(
          await backbone.consume({
            group: "ingress-dispatcher",
            topics: [topics.outbound],
            logger: logger.child({ component: "dispatcher" }),
            keyConcurrency: config.OUTBOUND_KEY_CONCURRENCY,
            handle: outbound,
            // Each number's rate is shared by the replicas as they share the partitions.
            onAssignment: (assignment) => {
              const owned = assignment[topics.outbound]?.length ?? 0;
              void backbone.kafka.admin.fetchTopicMetadata({ topics: [topics.outbound] }).then(
                ({ topics: [topic] }) => {
                  const total = topic?.partitions.length ?? 0;
                  pacer.setShare(paceShare(owned, total));
                  pacingRate.set(pacer.ratePerSecond);
                  logger.info(
                    { owned, partitions: total, ratePerNumber: pacer.ratePerSecond },
                    "outbound pacing set to this replica's share of the partitions",
                  );
                },
                (error: unknown) =>
                  // The last share stands until the next join: a rebalance is rare, a wrong share brief.
                  logger.warn({ err: error }, "could not read the outbound topic's partitions"),
              );
            },
          }),
        );
        // Statuses come in through the webhook like messages; this group reads them beside the
        // conversation's, so the dispatcher that sent a message also tracks what became of it.
        consumers.push(
          await backbone.consume({
            group: "ingress-statuses",
            topics: [topics.inbound],
            logger: logger.child({ component: "statuses" }),
            keyConcurrency: config.OUTBOUND_KEY_CONCURRENCY,
            // Nothing waits on a status but a report: reading the busy inbound topic in half-second
            // batches spares the broker a fetch and an offset commit per shopper message.
            batchFetch: { minBytes: 256 * 1024, maxWaitMs: 500 },
            handle: statuses,
          }),
        );
      } catch (error) {
        // Retried whole: the one that did start is stopped, not left as a second member.
        await stopConsumers();
        throw error;
      }
      // Outbound records past their retention go a batch at a time, in the processes that write
      // them; a full batch means more may wait, so the next follows at once. Any replica may sweep: a
      // record deleted by another is simply not found again.
      const retentionMs = config.INGRESS_RETENTION_DAYS * 24 * 3600 * 1000;
      let sweeping: Promise<unknown> = Promise.resolve();
      let stopped = false;
      const sweep = async () => {
        for (;;) {
          const { examined, ...removed } = await store.sweepExpired(new Date(Date.now() - retentionMs), 100);
          if (removed.sends + removed.attempts + removed.sent + removed.statuses > 0)
            logger.info(removed, "outbound records past their retention deleted");
          if (examined < 100 || stopped) return;
        }
      };
      const sweeper = setInterval(() => {
        sweeping = sweeping.then(() =>
          sweep().catch((error: unknown) =>
            logger.warn({ err: error }, "retention sweep failed; will retry"),
          ),
        );
      }, config.INGRESS_RETENTION_SWEEP_MS);
      return async () => {
        stopped = true;
        clearInterval(sweeper);
        await sweeping;
        await stopConsumers();
      };
    });
  }

  const ops = await listenOps({
    registry: backbone.registry,
    // The webhook needs Kafka alone: a MongoDB outage must not take ingress out of service and have
    // Meta's deliveries refused; the dispatcher, which needs MongoDB, waits for it meanwhile. A
    // dispatcher on its own is ready when it can do its work: with both.
    checks: takesWebhooks ? { kafka: backbone.checks.kafka } : backbone.checks,
    port: config.INGRESS_OPS_PORT,
    host: config.INGRESS_HOST,
    listener,
  });
  const url = await app?.listen({ port: config.INGRESS_PORT, host: config.INGRESS_HOST });
  return returnStarted(
    {
      endpoints: url ? { webhook: `${url}/webhook`, ops: ops.url } : { ops: ops.url },
      registry: backbone.registry,
      async stop() {
        // Out of service first, then the webhook: stop taking what we could no longer store.
        ops.drain();
        await app?.close();
        await dispatching?.stop();
        // Last of the listeners: /readyz says 503 while the dispatcher drains.
        await ops.close();
        await graph?.close();
        clock.stop();
        await backbone.close();
      },
    },
    backbone.started(),
    options,
  );
}

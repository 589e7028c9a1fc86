import { type BaseConfig, exitOnConfigError } from "@taituri/config";
import {
  type ConsumerOptions,
  connectKafka,
  type KafkaHandle,
  type RunningConsumer,
  startConsumer,
  topicNames,
  topicSpecs,
} from "@taituri/kafka";
import { configurePseudonyms, createLogger, type Logger } from "@taituri/logging";
import type { MongoHandle } from "@taituri/mongo";
import {
  createOpsServer,
  createRegistry,
  onShutdown,
  type ReadinessChecks,
  type Registry,
} from "@taituri/ops";
import { startTelemetry } from "@taituri/telemetry/sdk";

export { type ServiceClock, startServiceClock } from "./dev-clock.ts";

/** What a service factory returns: how to reach it, and how to stop it. */
export interface RunningService {
  /** Named URLs or addresses, e.g. { webhook: "http://…/webhook", ops: "http://…" }; logged at start. */
  endpoints: Record<string, string>;
  registry: Registry;
  stop(): Promise<void>;
}

export type ServiceFactory<C> = (config: C, logger: Logger) => Promise<RunningService>;

/**
 * Everything a service's main.ts does: parse the config (exit 78 naming every bad variable),
 * start OpenTelemetry, and only then load the service's code (so instrumentation sees its
 * libraries load), start it, log "ready", and stop it cleanly on SIGTERM or Ctrl-C.
 */
export async function runService<C extends BaseConfig>(options: {
  name: string;
  loadConfig: () => C;
  load: () => Promise<ServiceFactory<C>>;
  /** Routes the Fastify instrumentation leaves alone (see TelemetryOptions.fastifyIgnoreRoutes). */
  fastifyIgnoreRoutes?: string[];
}): Promise<void> {
  const config = exitOnConfigError(options.loadConfig);
  configurePseudonyms(config.PSEUDONYM_KEY);
  const telemetry = startTelemetry({
    serviceName: options.name,
    environment: config.DEPLOYMENT_ENVIRONMENT,
    ...(options.fastifyIgnoreRoutes ? { fastifyIgnoreRoutes: options.fastifyIgnoreRoutes } : {}),
  });
  const logger = createLogger({
    service: options.name,
    level: config.LOG_LEVEL,
    format: config.LOG_FORMAT,
    environment: config.DEPLOYMENT_ENVIRONMENT,
  });
  const start = await options.load();
  const service = await start(config, logger);
  logger.info(service.endpoints, "ready");
  onShutdown(
    async () => {
      await service.stop();
      await telemetry.shutdown();
    },
    (message) => logger.info(message),
  );
}

/** A consumer of the service's, on its backbone's Kafka connection, producer (dead letters) and metrics. */
export type BackboneConsumerOptions = Omit<
  ConsumerOptions,
  "kafka" | "producer" | "registry" | "groupId" | "logger"
> & {
  /** The consumer group after the topic prefix (`<KAFKA_TOPIC_PREFIX><group>`): one per role. */
  group: string;
  /** The service's logger unless given (e.g. a child naming the component). */
  logger?: Logger;
};

export interface Backbone {
  registry: Registry;
  kafka: KafkaHandle;
  mongo: MongoHandle;
  /** Readiness checks for both. */
  checks: ReadinessChecks;
  /** Starts a consumer on this backbone. */
  consume(options: BackboneConsumerOptions): Promise<RunningConsumer>;
  close(): Promise<void>;
}

/**
 * The connections every Kafka-and-MongoDB service opens at start-up: MongoDB (pinged), Kafka with
 * the topics created and the idempotent producer open, a metrics registry, and readiness checks.
 */
export async function connectBackbone(name: string, config: BaseConfig, logger: Logger): Promise<Backbone> {
  const registry = createRegistry(name);
  // Loaded here, after runService has started telemetry: the MongoDB instrumentation patches the
  // driver as it loads, and an import at the top of this file would load it first.
  const { connectMongo } = await import("@taituri/mongo");
  const mongo = await connectMongo({
    url: config.MONGO_URL,
    dbName: config.MONGO_DB,
    appName: name,
    maxPoolSize: config.MONGO_POOL_SIZE,
  });
  const kafka = await connectKafka({
    brokers: config.KAFKA_BROKERS,
    clientId: name,
    logger,
    security: config,
    topics: topicSpecs(topicNames(config.KAFKA_TOPIC_PREFIX), config.KAFKA_PARTITIONS),
  });
  return {
    registry,
    kafka,
    mongo,
    checks: { kafka: () => kafka.ping(), mongo: () => mongo.db.command({ ping: 1 }) },
    consume: ({ group, logger: own, ...options }) =>
      startConsumer({
        retryForMs: config.CONSUMER_RETRY_MAX_MS,
        retryMaxMs: config.CONSUMER_RETRY_BACKOFF_MAX_MS,
        ...options,
        kafka: kafka.kafka,
        producer: kafka.producer,
        registry,
        groupId: `${config.KAFKA_TOPIC_PREFIX}${group}`,
        logger: own ?? logger,
      }),
    async close() {
      await kafka.close();
      await mongo.close();
    },
  };
}

/**
 * A service whose only HTTP surface is its ops endpoints (/healthz, /readyz, /metrics): listens on
 * `port`, and on stop ends `stopWork` (consumers) first, so that /readyz answers while work
 * drains, then closes the server, then the backbone.
 */
export async function serveOps(
  backbone: Backbone,
  listen: { port: number; host: string },
  stopWork: () => Promise<void> = async () => {},
): Promise<RunningService> {
  const ops = createOpsServer({ registry: backbone.registry, checks: backbone.checks });
  const url = await ops.listen(listen);
  return {
    endpoints: { ops: url },
    registry: backbone.registry,
    async stop() {
      await stopWork();
      await ops.close();
      await backbone.close();
    },
  };
}

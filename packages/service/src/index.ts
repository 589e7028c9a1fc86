import { type BaseConfig, ConfigError, exitOnConfigError } from "@taituri/config";
import {
  type ConsumerOptions,
  type KafkaHandle,
  openKafka,
  type RunningConsumer,
  startConsumer,
  topicNames,
  topicSpecs,
} from "@taituri/kafka";
import { configurePseudonyms, createLogger, type Logger } from "@taituri/logging";
import type { CollectionIndexes, MongoHandle } from "@taituri/mongo";
import { createRegistry, onShutdown, type Registry } from "@taituri/ops";
import { startTelemetry } from "@taituri/telemetry/sdk";
import { listenOps } from "./ops-listener.ts";
import { DEFAULT_RETRY, mongoAddress, type RetryPolicy, StartStep } from "./start-step.ts";

export { type ServiceClock, startServiceClock } from "./dev-clock.ts";
export { listenOps, type OpsListener, type OpsListenerOptions } from "./ops-listener.ts";
export { DEFAULT_RETRY, failureReason, type RetryPolicy, StartStep, type StepState } from "./start-step.ts";

/** What a service factory returns: how to reach it, and how to stop it. */
export interface RunningService {
  /** Named URLs or addresses, e.g. { webhook: "http://…/webhook", ops: "http://…" }; logged at start. */
  endpoints: Record<string, string>;
  registry: Registry;
  /**
   * Resolves once every dependency is reached and every consumer started; pending meanwhile (the
   * service answers /readyz 503 naming what it waits for).
   */
  started?: Promise<void>;
  stop(): Promise<void>;
}

/** How a factory returns: at once (main.ts), or once started (tests and tools, which use it straight away). */
export interface StartOptions {
  /** Resolve only once `started` has (the default); main.ts passes false and serves while it waits. */
  waitForDependencies?: boolean;
}

/** A factory's return: the service with `started`, awaited unless the caller asked not to wait. */
export async function returnStarted(
  service: RunningService,
  started: Promise<unknown>,
  options: StartOptions = {},
): Promise<RunningService> {
  const whole: RunningService = { ...service, started: started.then(() => {}) };
  if (options.waitForDependencies !== false) await whole.started;
  return whole;
}

export type ServiceFactory<C> = (config: C, logger: Logger) => Promise<RunningService>;

/**
 * Everything a service's main.ts does: parse the config (exit 78 naming every bad variable),
 * start OpenTelemetry, and only then load the service's code (so instrumentation sees its
 * libraries load), start it, log "ready" once it has reached its dependencies, and stop it
 * cleanly on SIGTERM or Ctrl-C.
 */
export async function runService<C extends BaseConfig>(options: {
  name: string;
  loadConfig: () => C;
  load: () => Promise<ServiceFactory<C>>;
  /** The service makes its own SERVER spans (see TelemetryOptions.ownServerSpans). */
  ownServerSpans?: boolean;
}): Promise<void> {
  const config = exitOnConfigError(options.loadConfig);
  configurePseudonyms(config.PSEUDONYM_KEY);
  const telemetry = startTelemetry({
    serviceName: options.name,
    environment: config.DEPLOYMENT_ENVIRONMENT,
    ownServerSpans: options.ownServerSpans === true,
  });
  const logger = createLogger({
    service: options.name,
    level: config.LOG_LEVEL,
    format: config.LOG_FORMAT,
    environment: config.DEPLOYMENT_ENVIRONMENT,
  });
  await telemetry.ready;
  const start = await options.load();
  // Dependencies away do not stop the start (connectBackbone waits for them in the background);
  // a setting refused on the way (a file, a malformed URL) exits as a bad variable does.
  const service = await start(config, logger).catch((error: unknown) => {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(78);
  });
  // "ready" once its dependencies are reached and its consumers started, as /readyz would say;
  // meanwhile its StartSteps log what it waits for, and SIGTERM already stops it cleanly.
  void (service.started ?? Promise.resolve()).then(() => logger.info(service.endpoints, "ready"));
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

/** The backbone's dependencies, as /readyz and the log name them. */
export type Dependency = "kafka" | "mongodb";

/** Work started in the background once its dependencies are up (StartStep), and how to end it. */
export interface StartedWork {
  step: StartStep;
  /** Ends the attempts if it has not started yet, else what it started. */
  stop(): Promise<void>;
}

export interface Backbone {
  registry: Registry;
  /** Usable at once: sends and queries before Kafka or MongoDB are reached fail as in an outage. */
  kafka: KafkaHandle;
  mongo: MongoHandle;
  /** Each dependency, reached (and set up: topics, producer, indexes) in the background. */
  dependencies: Record<Dependency, StartStep>;
  /** Readiness of each: `kafka`, `mongodb`. A service whose traffic needs only one passes only it. */
  checks: Record<Dependency, () => Promise<unknown>>;
  /** Starts a consumer on this backbone now (inside whenUp: its dependencies are there). */
  consume(options: BackboneConsumerOptions): Promise<RunningConsumer>;
  /**
   * Runs `start` once `needs` are up, retried with backoff if it throws; what it returns is called
   * on stop. Consumers, pollers and sweepers start this way, so none runs into a dependency that
   * is not there yet. `start` must be safe to run again after a failure: build handlers, which
   * register metrics, outside it (a second registration throws, and the retry never succeeds).
   */
  whenUp(name: string, needs: Dependency[], start: () => Promise<() => Promise<void>>): StartedWork;
  /** Resolves once both dependencies and every whenUp so far are up. */
  started(): Promise<void>;
  close(): Promise<void>;
}

export interface BackboneOptions {
  /** Created once MongoDB answers, before anything that needs MongoDB starts (ensureIndexes). */
  indexes?: CollectionIndexes[];
  retry?: RetryPolicy;
}

/**
 * The connections every Kafka-and-MongoDB service uses, opened without waiting for either: each is
 * reached in the background with backoff (MongoDB pinged and its indexes created; Kafka's topics
 * created and the idempotent producer open), a metrics registry, and readiness checks. Throws only
 * on a setting the drivers refuse (a malformed MONGO_URL), as a ConfigError.
 */
export async function connectBackbone(
  name: string,
  config: BaseConfig,
  logger: Logger,
  options: BackboneOptions = {},
): Promise<Backbone> {
  const registry = createRegistry(name);
  // Loaded here, after runService has started telemetry: the MongoDB instrumentation patches the
  // driver as it loads, and an import at the top of this file would load it first.
  const { openMongo, ensureIndexes } = await import("@taituri/mongo");
  let mongo: MongoHandle;
  try {
    mongo = openMongo({
      url: config.MONGO_URL,
      dbName: config.MONGO_DB,
      appName: name,
      maxPoolSize: config.MONGO_POOL_SIZE,
    });
  } catch (error) {
    throw new ConfigError([`MONGO_URL: ${error instanceof Error ? error.message : String(error)}`]);
  }
  const kafka = openKafka({
    brokers: config.KAFKA_BROKERS,
    clientId: name,
    logger,
    security: config,
    topics: topicSpecs(topicNames(config.KAFKA_TOPIC_PREFIX), config.KAFKA_PARTITIONS),
    producer: {
      maxQueuedMessages: config.PRODUCER_MAX_QUEUED_MESSAGES,
      maxQueuedBytes: config.PRODUCER_MAX_QUEUED_BYTES,
    },
  });
  const retry = options.retry ?? DEFAULT_RETRY;
  const ping = () => mongo.db.command({ ping: 1 });
  const dependencies: Record<Dependency, StartStep> = {
    kafka: new StartStep({
      name: "kafka",
      address: config.KAFKA_BROKERS.join(","),
      attempt: () => kafka.connect(),
      ping: () => kafka.ping(),
      logger,
      retry,
    }).start(),
    mongodb: new StartStep({
      name: "mongodb",
      address: mongoAddress(config.MONGO_URL),
      attempt: async () => {
        // Explicitly, not by the first operation: a failed connect leaves the client's topology
        // closed, and only connect() opens a new one (a no-op once connected).
        await mongo.client.connect();
        await ping();
        await ensureIndexes(mongo.db, options.indexes ?? []);
      },
      ping,
      logger,
      retry,
    }).start(),
  };
  const work = new Set<StartedWork>();
  return {
    registry,
    kafka,
    mongo,
    dependencies,
    checks: { kafka: () => dependencies.kafka.check(), mongodb: () => dependencies.mongodb.check() },
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
    whenUp(workName, needs, start) {
      let stopStarted: (() => Promise<void>) | undefined;
      const step = new StartStep({
        name: workName,
        after: needs.map((need) => dependencies[need]),
        attempt: async () => {
          stopStarted = await start();
        },
        logger,
        retry,
      }).start();
      const started: StartedWork = {
        step,
        async stop() {
          work.delete(started);
          step.stop();
          await step.settled();
          // Also when the start succeeded while stopping: what it started is ended all the same.
          await stopStarted?.();
        },
      };
      work.add(started);
      return started;
    },
    async started() {
      await Promise.all([...Object.values(dependencies), ...[...work].map((w) => w.step)].map((s) => s.up));
    },
    async close() {
      for (const started of [...work]) await started.stop();
      for (const step of Object.values(dependencies)) step.stop();
      // Closing the clients is what ends an attempt in flight.
      await kafka.close();
      await mongo.close();
      for (const step of Object.values(dependencies)) await step.settled();
    },
  };
}

/**
 * A service whose only HTTP surface is its ops endpoints (/healthz, /readyz, /metrics): listens on
 * `port`, and on stop answers /readyz 503 and ends `stopWork` (consumers) first, so that the
 * endpoints answer while work drains, then closes the server, then the backbone.
 */
export async function serveOps(
  backbone: Backbone,
  listen: { port: number; host: string },
  stopWork: () => Promise<void> = async () => {},
  options: StartOptions = {},
): Promise<RunningService> {
  const ops = await listenOps({ registry: backbone.registry, checks: backbone.checks, ...listen });
  return returnStarted(
    {
      endpoints: { ops: ops.url },
      registry: backbone.registry,
      async stop() {
        ops.drain();
        await stopWork();
        await ops.close();
        await backbone.close();
      },
    },
    backbone.started(),
    options,
  );
}

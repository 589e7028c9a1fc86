import { RedisContainer } from "@testcontainers/redis";
import { GenericContainer, getContainerRuntimeClient, type StartedTestContainer, Wait } from "testcontainers";
import { kafkaProbe, newClusterId } from "./kafka.ts";
import { mongoProbe } from "./mongo.ts";
import { choosePort, DEFAULT_PORTS } from "./ports.ts";
import { waitUntilReady } from "./process.ts";
import { redisProbe } from "./redis.ts";
import type { LogFn, ServiceName, StartedService } from "./types.ts";
import { timed } from "./util.ts";

export const DOCKER_IMAGES = {
  kafka: "apache/kafka:4.1.2",
  mongo: "mongo:7",
  redis: "redis:7",
} as const;

/**
 * Uses testcontainers' own runtime detection (DOCKER_HOST, ~/.testcontainers.properties, the
 * socket, Podman…), bounded in time: a half-configured runtime must not stall every test run.
 */
export async function dockerRuntimeHost(timeoutMs = 5_000): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const client = await Promise.race([
      getContainerRuntimeClient(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), timeoutMs);
        timer.unref();
      }),
    ]);
    return client.info.containerRuntime.host;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "::1";
}

function containerService(
  name: ServiceName,
  container: StartedTestContainer,
  endpoint: string,
  log: LogFn,
): StartedService {
  let stopping: Promise<void> | undefined;
  return {
    name,
    endpoint,
    stop: () => {
      stopping ??= timed(log, `${name}: stopping container`, async () => {
        await container.stop({ timeout: 10_000 });
      });
      return stopping;
    },
  };
}

/** Waits with our own probe; testcontainers' port/log waits alone don't prove the server is usable. */
export async function probeContainer(
  name: ServiceName,
  container: StartedTestContainer,
  probe: () => Promise<void>,
  timeoutMs: number,
): Promise<void> {
  let exited = false;
  const server = {
    name,
    pid: 0,
    logFile: `(docker logs ${container.getId().slice(0, 12)})`,
    exited: new Promise<never>(() => {}),
    hasExited: () => exited,
    stop: async () => {
      exited = true;
    },
  };
  await waitUntilReady({ server, probe, timeoutMs });
}

async function startKafka(host: string, log: LogFn, timeoutMs: number): Promise<StartedService> {
  const { container, brokers } = await startKafkaContainer(host, timeoutMs);
  return containerService("kafka", container, brokers.join(","), log);
}

/** A ready Kafka container; its data lives in the container, so a stop and start of it keeps the topics. */
export async function startKafkaContainer(
  host: string,
  timeoutMs: number,
): Promise<{ container: StartedTestContainer; brokers: string[]; clusterId: string }> {
  // Kafka tells clients which address to reconnect to, so the advertised listener must be the
  // address seen from the host. A container port equal to the host port makes that known before start,
  // and keeps it across a container stop and start.
  const port = isLoopback(host) ? await choosePort(DEFAULT_PORTS.kafka) : DEFAULT_PORTS.kafka;
  const clusterId = newClusterId();
  const container = await new GenericContainer(DOCKER_IMAGES.kafka)
    .withExposedPorts({ container: port, host: port })
    .withEnvironment({
      CLUSTER_ID: clusterId,
      KAFKA_NODE_ID: "1",
      KAFKA_PROCESS_ROLES: "broker,controller",
      KAFKA_LISTENERS: `PLAINTEXT://0.0.0.0:${port},CONTROLLER://127.0.0.1:9093`,
      KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://${host}:${port}`,
      KAFKA_CONTROLLER_LISTENER_NAMES: "CONTROLLER",
      KAFKA_INTER_BROKER_LISTENER_NAME: "PLAINTEXT",
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
      KAFKA_CONTROLLER_QUORUM_VOTERS: "1@127.0.0.1:9093",
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "1",
      KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS: "1",
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "1",
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "1",
      KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS: "1",
      KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR: "1",
      KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR: "1",
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: "0",
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false",
      KAFKA_NUM_PARTITIONS: "1",
      KAFKA_HEAP_OPTS: "-Xms256m -Xmx512m",
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .withStartupTimeout(timeoutMs)
    .start();
  const brokers = [`${host}:${port}`];
  try {
    await probeContainer("kafka", container, kafkaProbe(brokers, clusterId), timeoutMs);
  } catch (err) {
    await container.stop();
    throw err;
  }
  return { container, brokers, clusterId };
}

async function startMongo(log: LogFn, timeoutMs: number): Promise<StartedService> {
  // Plain standalone mongod (no replica set), like FerretDB: same URL shape, same lack of
  // transactions/change streams, so code that passes here also passes in local mode.
  const container = await new GenericContainer(DOCKER_IMAGES.mongo)
    .withExposedPorts(27017)
    .withWaitStrategy(Wait.forLogMessage(/Waiting for connections/))
    .withStartupTimeout(timeoutMs)
    .start();
  const url = `mongodb://${container.getHost()}:${container.getMappedPort(27017)}/`;
  try {
    await probeContainer("mongo", container, () => mongoProbe(url), timeoutMs);
  } catch (err) {
    await container.stop();
    throw err;
  }
  return containerService("mongo", container, url, log);
}

async function startRedis(log: LogFn, timeoutMs: number): Promise<StartedService> {
  const container = await new RedisContainer(DOCKER_IMAGES.redis)
    .withCommand(["redis-server", "--save", "", "--appendonly", "no"])
    .withStartupTimeout(timeoutMs)
    .start();
  const url = container.getConnectionUrl();
  try {
    await probeContainer("redis", container, () => redisProbe(url), timeoutMs);
  } catch (err) {
    await container.stop();
    throw err;
  }
  return containerService("redis", container, url, log);
}

/** Starts the requested services in containers; testcontainers' Ryuk removes them if we die. */
export async function startDockerServices(opts: {
  host: string;
  services: ServiceName[];
  log: LogFn;
  readyTimeoutMs: number;
}): Promise<StartedService[]> {
  const { host, log, readyTimeoutMs } = opts;
  const starters: Record<ServiceName, () => Promise<StartedService>> = {
    kafka: () =>
      timed(log, `kafka: starting ${DOCKER_IMAGES.kafka}`, () => startKafka(host, log, readyTimeoutMs)),
    mongo: () => timed(log, `mongo: starting ${DOCKER_IMAGES.mongo}`, () => startMongo(log, readyTimeoutMs)),
    redis: () => timed(log, `redis: starting ${DOCKER_IMAGES.redis}`, () => startRedis(log, readyTimeoutMs)),
  };
  const results = await Promise.allSettled(opts.services.map((s) => starters[s]()));
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failed.length > 0) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw failed[0];
  }
  return started;
}

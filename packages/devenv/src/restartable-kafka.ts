import { resolveCacheDir } from "./cache.ts";
import {
  type KafkaOAuth,
  type KafkaSaslListener,
  kafkaProbe,
  provisionKafka,
  startLocalKafkaBroker,
} from "./kafka.ts";
import { openLocalRun } from "./local.ts";
import { chooseMode } from "./mode.ts";
import type { LogFn, StartInfraOptions } from "./types.ts";
import { defaultLog, seconds, timed } from "./util.ts";

export interface RestartableKafka {
  /** Stays the same across stop() and start(): clients given it reconnect by themselves. */
  brokers: string[];
  /** The SASL_PLAINTEXT listener's address, when `sasl` was given. */
  saslBrokers?: string[];
  mode: "docker" | "local";
  /** Stops the broker (an orderly shutdown) and keeps its data. Resolves once it is gone. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data; resolves once the readiness probe passes. */
  start(): Promise<void>;
  isRunning(): boolean;
  /** Stops it if needed and removes its data (local: the run folder; docker: the container). Idempotent. */
  close(): Promise<void>;
}

export type RestartableKafkaOptions = Omit<StartInfraOptions, "persist"> & {
  /** Also a listener that wants SASL, with these users (local mode only). */
  sasl?: KafkaSaslListener;
  /**
   * Secured as the shared broker is (local mode only): OAUTHBEARER checked against this issuer,
   * ACLs, no PLAINTEXT listener. `brokers` is then that listener; log in as `oauth.admin` with PLAIN.
   */
  oauth?: KafkaOAuth;
};

/**
 * A Kafka broker of this test's own, to take away and bring back: for outage tests. KAFKA_BROKERS
 * is ignored on purpose (someone else's broker cannot be stopped); the mode is otherwise chosen as
 * in startInfra: containers when a Docker runtime is reachable, local processes otherwise.
 */
export async function startRestartableKafka(opts: RestartableKafkaOptions = {}): Promise<RestartableKafka> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const chosen = await chooseMode(opts.mode ?? env.TAITURI_INFRA_MODE ?? "auto", log);
  if (chosen.mode === "docker") {
    if (opts.sasl || opts.oauth)
      throw new Error("a SASL listener is only made by a local broker (TAITURI_INFRA_MODE=local)");
    return startDockerKafka(chosen.dockerHost, log, readyTimeoutMs);
  }

  const cacheDir = resolveCacheDir(opts.cacheDir, env);
  const install = await timed(log, "kafka: provisioning", () => provisionKafka({ cacheDir, log }));
  const { ctx, cleanup } = await openLocalRun({
    cacheDir,
    log,
    persist: false,
    readyTimeoutMs,
    label: "restartable-kafka",
  });
  let broker: Awaited<ReturnType<typeof startLocalKafkaBroker>>;
  try {
    broker = await startLocalKafkaBroker(ctx, install, {
      ...(opts.sasl ? { sasl: opts.sasl } : {}),
      ...(opts.oauth ? { oauth: opts.oauth } : {}),
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  return lifecycle({
    brokers: broker.brokers,
    ...(broker.saslBrokers ? { saslBrokers: broker.saslBrokers } : {}),
    mode: "local",
    log,
    stop: () => broker.stop(),
    start: () => broker.start(),
    isRunning: () => broker.isRunning(),
    remove: cleanup,
  });
}

/**
 * Docker mode: the container is stopped and started, never removed in between; its port mapping
 * (host port = container port, see startKafkaContainer) and its data survive that. Typechecked, not
 * yet run here (no Docker engine on our machines).
 */
async function startDockerKafka(host: string, log: LogFn, readyTimeoutMs: number): Promise<RestartableKafka> {
  const docker = await import("./docker.ts");
  const { getContainerRuntimeClient } = await import("testcontainers");
  const { container, brokers, clusterId } = await timed(log, "kafka: starting a restartable container", () =>
    docker.startKafkaContainer(host, readyTimeoutMs),
  );
  const client = await getContainerRuntimeClient();
  const handle = client.container.getById(container.getId());
  let running = true;
  return lifecycle({
    brokers,
    mode: "docker",
    log,
    stop: async () => {
      await client.container.stop(handle, { timeout: 30_000 });
      running = false;
    },
    start: async () => {
      await client.container.start(handle);
      running = true;
      await docker.probeContainer("kafka", container, kafkaProbe(brokers, clusterId), readyTimeoutMs);
    },
    isRunning: () => running,
    remove: async () => {
      await container.stop({ remove: true, timeout: 10_000 });
    },
  });
}

/** The shared bookkeeping: timing lines in the log, no start after close, close idempotent. */
function lifecycle(b: {
  brokers: string[];
  saslBrokers?: string[];
  mode: "docker" | "local";
  log: LogFn;
  stop: () => Promise<void>;
  start: () => Promise<void>;
  isRunning: () => boolean;
  remove: () => Promise<void>;
}): RestartableKafka {
  let closing: Promise<void> | undefined;
  const step = async (what: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    b.log(`kafka: ${what} in ${seconds(performance.now() - t0)}`);
  };
  return {
    brokers: b.brokers,
    ...(b.saslBrokers ? { saslBrokers: b.saslBrokers } : {}),
    mode: b.mode,
    stop: () => step("stopped (data kept)", b.stop),
    start: async () => {
      if (closing) throw new Error("start() after close(): this Kafka is gone");
      await step(`started again on ${b.brokers.join(",")}`, b.start);
    },
    isRunning: b.isRunning,
    close: () => {
      closing ??= (async () => {
        if (b.isRunning()) await b.stop();
        await b.remove();
      })();
      return closing;
    },
  };
}

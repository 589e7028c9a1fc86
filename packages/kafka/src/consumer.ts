import type { Logger } from "@taituri/logging";
import { backoffMs, RecentRate } from "@taituri/pacing";
import { extractContext, pseudonym, SpanKind, withSpan } from "@taituri/telemetry";
import type { Consumer, Kafka, KafkaMessage } from "kafkajs";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { deadLetterOf } from "./dead-letter.ts";
import { classify } from "./errors.ts";
import { Header, headersToRecord } from "./headers.ts";
import { PartitionLane } from "./lane.ts";
import type { EventProducer } from "./producer.ts";
import { deadLetterTopic } from "./topics.ts";

export interface IncomingMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

export type Outcome = "processed" | "dead_lettered" | "retried";

export interface ConsumerOptions {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  /** Handles one message. Throw PermanentError to dead-letter it, TransientError to retry it. */
  handle: (message: IncomingMessage) => Promise<void>;
  /** Publishes dead letters. */
  producer: EventProducer;
  logger: Logger;
  /** This member's partitions after each join of the group (topic → partitions). */
  onAssignment?: (assignment: Record<string, number[]>) => void;
  /**
   * Partitions processed at once. Order is kept within a partition (so per conversation); different
   * partitions move independently, so one slow shopper does not hold up the others.
   */
  partitionsConsumedConcurrently?: number;
  /**
   * Messages of one partition handled at once, when their keys differ; one key's messages are
   * still handled one after another, in offset order. A handler waits on a database and a broker
   * for most of its time (~10 ms for the conversation's), so one message at a time caps a partition
   * near 100 messages/s however idle the CPU; with keys being conversations, this lets different
   * shoppers on one partition overlap. 1 keeps the partition strictly sequential.
   */
  keyConcurrency?: number;
  /**
   * Messages of one partition fetched ahead of their handling (waiting or in hand) before the next
   * fetch waits for room. Default: 8 × keyConcurrency, at least 64.
   */
  maxBufferedPerPartition?: number;
  /**
   * The handled position is committed at most this often (and on stop). A crash redelivers what was
   * handled since, which the handlers' idempotency keys drop; one commit per message would cost the
   * broker a write each.
   */
  commitIntervalMs?: number;
  /**
   * Under load, after handing a fetched batch over, the next fetch waits this long. The lanes keep
   * working meanwhile; what it costs is at most this much added wait for a message that arrives just
   * after a fetch, and what it saves is a fetch (and the broker's answer to it) per few messages:
   * without it, a consumer fetching ahead asked the broker once per message or two. Idle, a fetch
   * still waits at the broker for the first message, so an idle consumer does not spin.
   */
  fetchSpacingMs?: number;
  /**
   * "Under load": the recent rate of fetched messages (RecentRate) brings at least this many per
   * `fetchSpacingMs`. Below it, a wait would gather about one message and only delay it, so the
   * next fetch goes at once (the threshold's choice, measured, is in bench/README.md).
   */
  fetchSpacingFromExpected?: number;
  /**
   * For a group off the shopper's path: the broker holds each fetch until this many bytes are
   * waiting or `maxWaitMs` has passed, so messages come in batches, with one fetch and one offset
   * commit per batch instead of per message. Unset: a fetch returns as soon as one message is there.
   */
  batchFetch?: { minBytes: number; maxWaitMs: number };
  /**
   * How long a message whose handling fails with a transient or unclassified error is retried in
   * place, counted from its first failure, before it is dead-lettered (CONSUMER_RETRY_MAX_MS).
   * Bounded by time, not attempts: a database failover or a broker restart takes tens of seconds
   * whatever the attempt count, and every message of it must outlive it; a message that fails for
   * longer (a bug, an outage of many minutes) stops holding its key and partition, and goes where
   * it can be replayed from. Default 5 minutes.
   */
  retryForMs?: number;
  /** The first retry's wait; each later one doubles, jittered (backoffMs), up to `retryMaxMs`. */
  retryInitialMs?: number;
  /**
   * The longest wait between two attempts (CONSUMER_RETRY_BACKOFF_MAX_MS), so also about the
   * longest a message waits after its dependency came back. Default 10 s.
   */
  retryMaxMs?: number;
  /** Called once per message with its outcome. */
  onOutcome?: (topic: string, outcome: Outcome, error?: unknown) => void;
  /** Where to report lag, outcomes and processing time (labelled by group and topic). */
  registry?: Registry;
}

/** One instance of each consumer metric per registry, shared by every consumer it counts. */
function consumerMetrics(registry: Registry) {
  const existing = <T>(name: string) => registry.getSingleMetric(name) as T | undefined;
  return {
    lag:
      existing<Gauge>("kafka_consumer_lag") ??
      new Gauge({
        name: "kafka_consumer_lag",
        help: "Messages behind the end of the partition after the last batch (queue lag)",
        labelNames: ["group", "topic", "partition"],
        registers: [registry],
      }),
    messages:
      existing<Counter>("kafka_consumer_messages_total") ??
      new Counter({
        name: "kafka_consumer_messages_total",
        help: "Messages handled by outcome (processed, dead_lettered, retried)",
        labelNames: ["group", "topic", "outcome"],
        registers: [registry],
      }),
    seconds:
      existing<Histogram>("kafka_consumer_process_seconds") ??
      new Histogram({
        name: "kafka_consumer_process_seconds",
        help: "Time to handle one message, retries included",
        labelNames: ["group", "topic"],
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
        registers: [registry],
      }),
    retries:
      existing<Counter>("kafka_consumer_retries_total") ??
      new Counter({
        name: "kafka_consumer_retries_total",
        help: "Failed attempts at a message that will be retried, by the failure's class (transient, unknown)",
        labelNames: ["group", "topic", "kind"],
        registers: [registry],
      }),
    retrySeconds:
      existing<Counter>("kafka_consumer_retry_seconds_total") ??
      new Counter({
        name: "kafka_consumer_retry_seconds_total",
        help: "Time messages spent waiting between attempts, by the failure's class (transient, unknown)",
        labelNames: ["group", "topic", "kind"],
        registers: [registry],
      }),
    delay:
      existing<Histogram>("kafka_consumer_delay_seconds") ??
      new Histogram({
        name: "kafka_consumer_delay_seconds",
        help: "From the message's timestamp (when its producer made it) to the start of its handling: the time spent in the queue, fetches and batches included",
        labelNames: ["group", "topic"],
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300],
        registers: [registry],
      }),
  };
}

export interface RunningConsumer {
  consumer: Consumer;
  stop(): Promise<void>;
}

/**
 * A consumer group member that classifies failures at the boundary: permanent ones go to the
 * topic's dead-letter twin with the reason at once and are committed; transient and unclassified
 * ones are retried in place with backoff and jitter (that key waits, so its order holds, and its
 * partition's position is not committed past it) until they succeed, `retryForMs` has passed since
 * the first failure (then they are dead-lettered too), or the consumer stops, in which case the
 * offset stays uncommitted and the message comes back after a restart.
 */
export async function startConsumer(options: ConsumerOptions): Promise<RunningConsumer> {
  const {
    kafka,
    groupId,
    topics,
    handle,
    producer,
    logger,
    partitionsConsumedConcurrently = 3,
    keyConcurrency = 1,
    maxBufferedPerPartition = Math.max(64, 8 * keyConcurrency),
    commitIntervalMs = 100,
    fetchSpacingMs = 10,
    fetchSpacingFromExpected = 1.2,
    batchFetch,
    retryForMs = 5 * 60_000,
    retryInitialMs = 200,
    retryMaxMs = 10_000,
    registry,
  } = options;
  const metrics = registry ? consumerMetrics(registry) : undefined;
  const onOutcome = (topic: string, outcome: Outcome, error?: unknown) => {
    metrics?.messages.inc({ group: groupId, topic, outcome });
    options.onOutcome?.(topic, outcome, error);
  };
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    // A handler that waits on a retry heartbeats itself (below), so this bounds a hung process and
    // how long a group stalls after a broker outage: kafkajs restarts a consumer that ran out of
    // retries as a new member, and the coordinator waits for the old member's session to expire
    // (measured: 30 s with 30_000, 10 s with 10_000). Kafka's minimum is 6 s.
    sessionTimeout: 10_000,
    // Bounds how long a disconnect waits for the fetch in flight; an idle fetch returns after this.
    maxWaitTimeInMs: batchFetch?.maxWaitMs ?? 1000,
    ...(batchFetch ? { minBytes: batchFetch.minBytes } : {}),
    heartbeatInterval: 3_000,
    retry: {
      retries: 5,
      // kafkajs restarts a crashed consumer on a timer that a disconnect already in progress does
      // not see: a crash during stop() (a start retried while Kafka is away stops what it started)
      // came back as a second member of the group that takes partitions and handles nothing (the
      // chaos suite lost every reply on them). A stopped consumer is never restarted.
      restartOnFailure: async () => !stopping.signal.aborted,
    },
  });
  const stopping = new AbortController();
  const fetched = new RecentRate();

  const deadLetter = (
    topic: string,
    partition: number,
    message: KafkaMessage,
    reason: string,
    error: unknown,
  ) =>
    producer.send(deadLetterTopic(topic), [
      deadLetterOf(message, { topic, partition, reason, error, at: new Date() }),
    ]);

  /** One message, through to an outcome: handled, dead-lettered, or (only when stopping) thrown. */
  const processMessage = async (
    topic: string,
    partition: number,
    message: KafkaMessage,
    heartbeat: () => Promise<void>,
  ) => {
    const incoming: IncomingMessage = {
      topic,
      partition,
      offset: message.offset,
      key: message.key?.toString() ?? "",
      value: message.value ?? Buffer.alloc(0),
      headers: headersToRecord(message.headers),
    };
    const stopTimer = metrics?.seconds.startTimer({ group: groupId, topic });
    // A clock skew between hosts shows here as well; a negative delay is counted as none.
    metrics?.delay.observe(
      { group: groupId, topic },
      Math.max(0, (Date.now() - Number(message.timestamp)) / 1000),
    );
    try {
      await withSpan(
        "@taituri/kafka",
        `${topic} process`,
        {
          kind: SpanKind.CONSUMER,
          parent: extractContext(incoming.headers),
          attributes: {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": String(partition),
            "messaging.kafka.offset": Number(message.offset),
            "messaging.consumer.group.name": groupId,
          },
        },
        async (span) => {
          const messageId = incoming.headers[Header.messageId];
          if (messageId && span.isRecording())
            span.setAttribute("messaging.message.id", pseudonym(messageId));
          let firstFailure: number | undefined;
          for (let attempt = 1; ; attempt++) {
            try {
              await handle(incoming);
              onOutcome(topic, "processed");
              return;
            } catch (error) {
              const kind = classify(error);
              firstFailure ??= Date.now();
              const retriedMs = Date.now() - firstFailure;
              const exhausted = kind !== "permanent" && retriedMs >= retryForMs;
              if (kind === "permanent" || exhausted) {
                const reason =
                  kind === "permanent"
                    ? "permanent"
                    : `${kind} error, retried for ${Math.round(retriedMs / 1000)} s (${attempt} attempts)`;
                logger.error(
                  { err: error, topic, partition, offset: message.offset, reason },
                  "dead-lettering message",
                );
                span.addEvent("dead_lettered", { reason });
                // The partition waits until the dead letter is stored: committing past a message
                // that is neither handled nor dead-lettered would lose it.
                for (let n = 1; ; n++) {
                  try {
                    await deadLetter(topic, partition, message, reason, error);
                    break;
                  } catch (dlqError) {
                    if (stopping.signal.aborted) throw dlqError;
                    const delay = backoffMs(n, retryInitialMs, retryMaxMs);
                    logger.warn(
                      { err: dlqError, topic, partition, offset: message.offset, attempt: n, delay },
                      "dead-lettering failed; retrying",
                    );
                    await sleepWithHeartbeat(delay, heartbeat, stopping.signal);
                  }
                }
                onOutcome(topic, "dead_lettered", error);
                return;
              }
              if (stopping.signal.aborted) throw error;
              // The last wait ends at the bound, so the last attempt is made at it, not before.
              const delay = Math.min(backoffMs(attempt, retryInitialMs, retryMaxMs), retryForMs - retriedMs);
              logger.warn(
                { err: error, topic, partition, offset: message.offset, attempt, delay, kind, retriedMs },
                "retrying message",
              );
              onOutcome(topic, "retried", error);
              metrics?.retries.inc({ group: groupId, topic, kind });
              const waitStarted = Date.now();
              await sleepWithHeartbeat(delay, heartbeat, stopping.signal);
              metrics?.retrySeconds.inc({ group: groupId, topic, kind }, (Date.now() - waitStarted) / 1000);
              if (stopping.signal.aborted) throw error;
            }
          }
        },
      );
    } finally {
      stopTimer?.();
    }
  };

  if (metrics) {
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      metrics.lag.set(
        { group: groupId, topic: payload.topic, partition: String(payload.partition) },
        Number(payload.offsetLag),
      );
    });
  }

  // Fetching runs ahead of handling: each fetched batch joins its partition's lane and is resolved
  // at once, so kafkajs fetches again while the lane works; the position committed is the lane's
  // handled prefix, by this code, never kafkajs's (autoCommit off).
  const lanes = new Map<string, { topic: string; partition: number; lane: PartitionLane }>();
  const committed = new Map<string, string>();
  /** kafkajs's heartbeat, for handlers that wait out a retry (the latest batch's; one per member). */
  let heartbeat: () => Promise<void> = async () => {};
  const laneOf = (topic: string, partition: number): PartitionLane => {
    const key = `${topic}\u0000${partition}`;
    const existing = lanes.get(key);
    if (existing) return existing.lane;
    const lane = new PartitionLane({
      concurrency: keyConcurrency,
      stopped: () => stopping.signal.aborted,
      onProgress: () => scheduleCommit(),
      handle: (message) => processMessage(topic, partition, message, () => heartbeat()),
    });
    lanes.set(key, { topic, partition, lane });
    return lane;
  };

  let commitTimer: NodeJS.Timeout | undefined;
  let committing: Promise<void> = Promise.resolve();
  /** Commits every lane's handled position that moved since its last commit. Never rejects. */
  const commitNow = async (): Promise<void> => {
    const offsets: Array<{ key: string; topic: string; partition: number; offset: string }> = [];
    for (const [key, { topic, partition, lane }] of lanes) {
      const offset = lane.position;
      if (offset !== undefined && !lane.revoked && committed.get(key) !== offset)
        offsets.push({ key, topic, partition, offset });
    }
    if (offsets.length === 0) return;
    try {
      await consumer.commitOffsets(
        offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })),
      );
      for (const { key, offset } of offsets) committed.set(key, offset);
    } catch (error) {
      // A rebalance or a broker away: the next commit carries the same positions (or later ones).
      logger.warn({ err: error, groupId }, "committing offsets failed; will retry");
      if (!stopping.signal.aborted) scheduleCommit();
    }
  };
  const scheduleCommit = () => {
    if (commitTimer || stopping.signal.aborted) return;
    commitTimer = setTimeout(() => {
      commitTimer = undefined;
      committing = committing.then(commitNow);
    }, commitIntervalMs);
  };

  // A partition that went to another member: its lane starts nothing more and commits nothing (the
  // new owner does). A partition kept is fetched again from its committed position; its lane skips
  // what it already holds.
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    // A restart that slipped past restartOnFailure (its timer set just before stop() began): this
    // member must not hold partitions it will never handle.
    if (stopping.signal.aborted) {
      logger.warn({ groupId }, "a stopped consumer rejoined its group; leaving it");
      void consumer.disconnect().catch(() => {});
      return;
    }
    options.onAssignment?.(payload.memberAssignment);
    const assigned = new Set(
      Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
        partitions.map((partition) => `${topic}\u0000${partition}`),
      ),
    );
    for (const [key, { lane }] of lanes) {
      if (assigned.has(key)) continue;
      lane.revoke();
      lanes.delete(key);
      committed.delete(key);
    }
  });

  // kafkajs's run() resolves even when its first join fails, and a failure it does not retry (the
  // group refused by the broker's ACLs: "Failed to find group coordinator") leaves a stopped
  // consumer behind a start that seemed to succeed. Such a start throws instead, so that the
  // caller's start step retries it.
  let refused: Error | undefined;
  let ran = false;
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!ran && !payload.restart) refused ??= payload.error;
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently,
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async (payload) => {
      const { batch } = payload;
      if (stopping.signal.aborted || !payload.isRunning() || payload.isStale()) return;
      heartbeat = payload.heartbeat;
      const lane = laneOf(batch.topic, batch.partition);
      lane.add(batch.messages);
      const last = batch.messages.at(-1);
      // Moves the fetch position only (autoCommit is off): the lane now holds these messages.
      if (last) payload.resolveOffset(last.offset);
      // Fetches ahead only so far: with this many waiting or in hand, the next fetch waits for room.
      while (
        lane.size > maxBufferedPerPartition &&
        !stopping.signal.aborted &&
        payload.isRunning() &&
        !payload.isStale()
      ) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          lane.whenSizeAtMost(maxBufferedPerPartition),
          new Promise((resolve) => {
            timer = setTimeout(resolve, 1000);
          }),
        ]);
        clearTimeout(timer);
        // Throws when the group is rebalancing; kafkajs then rejoins (GROUP_JOIN above).
        await payload.heartbeat();
      }
      fetched.add(batch.messages.length);
      if (
        fetchSpacingMs > 0 &&
        !stopping.signal.aborted &&
        fetched.expectedWithin(fetchSpacingMs) >= fetchSpacingFromExpected
      )
        await new Promise((resolve) => setTimeout(resolve, fetchSpacingMs));
    },
  });
  ran = true;
  if (refused) {
    // kafkajs has disconnected it already; this also ends the connection to the brokers.
    await consumer.disconnect().catch(() => {});
    throw refused;
  }
  return {
    consumer,
    async stop() {
      stopping.abort();
      clearTimeout(commitTimer);
      commitTimer = undefined;
      // No more fetches; handlers in hand finish (one waiting out a retry gives up), then the
      // handled positions are committed while this member still owns its partitions.
      try {
        consumer.pause(topics.map((topic) => ({ topic })));
      } catch {
        // Not running (kafkajs gave up on it): nothing fetches anyway.
      }
      for (const { lane } of lanes.values()) lane.wake();
      await Promise.all([...lanes.values()].map(({ lane }) => lane.idle()));
      await committing;
      await commitNow();
      await consumer.disconnect();
    },
  };
}

async function sleepWithHeartbeat(
  ms: number,
  heartbeat: () => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const until = Date.now() + ms;
  while (!signal.aborted && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, until - Date.now())));
    // Keeps the group from deciding this member is dead while it waits out an outage.
    await heartbeat().catch(() => {});
  }
}

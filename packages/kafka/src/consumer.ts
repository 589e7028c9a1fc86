import type { Logger } from "@taituri/logging";
import { extractContext, pseudonym, SpanKind, withSpan } from "@taituri/telemetry";
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { backoffMs, classify } from "./errors.ts";
import { Header, headersToRecord } from "./headers.ts";
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
  /**
   * Partitions processed at once. Order is kept within a partition (so per conversation); different
   * partitions move independently, so one slow shopper does not hold up the others.
   */
  partitionsConsumedConcurrently?: number;
  /**
   * Messages of one fetched batch handled at once, when their keys differ; one key's messages are
   * still handled one after another, in offset order. A handler waits on a database and a broker
   * for most of its time (~10 ms for the conversation's), so one message at a time caps a partition
   * near 100 messages/s however idle the CPU; with keys being conversations, this lets different
   * shoppers on one partition overlap. 1 keeps the partition strictly sequential.
   */
  keyConcurrency?: number;
  /**
   * For a group off the shopper's path: the broker holds each fetch until this many bytes are
   * waiting or `maxWaitMs` has passed, so messages come in batches, with one fetch and one offset
   * commit per batch instead of per message. Unset: a fetch returns as soon as one message is there.
   */
  batchFetch?: { minBytes: number; maxWaitMs: number };
  /** An error that is neither permanent nor transient (a bug, most likely) is retried this often, then dead-lettered. */
  maxUnknownAttempts?: number;
  retryInitialMs?: number;
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
  };
}

export interface RunningConsumer {
  consumer: Consumer;
  stop(): Promise<void>;
}

/**
 * A consumer group member that classifies failures at the boundary: permanent ones go to the
 * topic's dead-letter twin with the reason and are committed; transient ones are retried in place
 * with backoff and jitter (the partition waits, so order holds) until they succeed or the consumer
 * stops, in which case the offset stays uncommitted and the message comes back after a restart.
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
    batchFetch,
    maxUnknownAttempts = 5,
    retryInitialMs = 200,
    retryMaxMs = 30_000,
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
  });
  const stopping = new AbortController();

  const deadLetter = async (
    topic: string,
    partition: number,
    message: KafkaMessage,
    reason: string,
    error: unknown,
  ) => {
    await producer.send(deadLetterTopic(topic), [
      {
        key: message.key?.toString() ?? "",
        value: message.value ?? Buffer.alloc(0),
        headers: {
          ...headersToRecord(message.headers),
          [Header.dlqReason]: reason,
          [Header.dlqError]: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
          [Header.dlqSourceTopic]: topic,
          [Header.dlqSourcePartition]: String(partition),
          [Header.dlqSourceOffset]: message.offset,
          [Header.dlqAt]: new Date().toISOString(),
        },
      },
    ]);
  };

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
          for (let attempt = 1; ; attempt++) {
            try {
              await handle(incoming);
              onOutcome(topic, "processed");
              return;
            } catch (error) {
              const kind = classify(error);
              const exhausted = kind === "unknown" && attempt >= maxUnknownAttempts;
              if (kind === "permanent" || exhausted) {
                const reason = kind === "permanent" ? "permanent" : `unknown error after ${attempt} attempts`;
                logger.error(
                  { err: error, topic, partition, offset: message.offset, reason },
                  "dead-lettering message",
                );
                span.addEvent("dead_lettered", { reason });
                await deadLetter(topic, partition, message, reason, error);
                onOutcome(topic, "dead_lettered", error);
                return;
              }
              if (stopping.signal.aborted) throw error;
              const delay = backoffMs(attempt, retryInitialMs, retryMaxMs);
              logger.warn(
                { err: error, topic, partition, offset: message.offset, attempt, delay, kind },
                "retrying message",
              );
              onOutcome(topic, "retried", error);
              await sleepWithHeartbeat(delay, heartbeat, stopping.signal);
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
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently,
    // Offsets are resolved as the handled prefix of the batch grows (see handleBatch), never past a
    // message still in hand, so a stop or a crash mid-batch redelivers only what was not finished.
    eachBatchAutoResolve: false,
    eachBatch: (payload) => handleBatch(payload, keyConcurrency, processMessage),
  });
  return {
    consumer,
    async stop() {
      stopping.abort();
      await consumer.disconnect();
    },
  };
}

/**
 * Handles a fetched batch: up to `concurrency` messages at once, never two of one key, each key's in
 * offset order; a free slot takes the waiting message with the lowest offset whose key is idle. The
 * committed position follows the longest handled prefix. After a failure (a stop during a retry, a
 * rebalance seen by the heartbeat) no message is started; those in hand finish, then it is rethrown.
 */
export async function handleBatch(
  payload: Pick<EachBatchPayload, "batch" | "resolveOffset" | "heartbeat" | "isRunning" | "isStale">,
  concurrency: number,
  handleOne: (
    topic: string,
    partition: number,
    message: KafkaMessage,
    heartbeat: () => Promise<void>,
  ) => Promise<void>,
): Promise<void> {
  const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
  const messages = batch.messages;
  const keys = messages.map((message) => message.key?.toString() ?? "");
  const started = new Array<boolean>(messages.length).fill(false);
  const done = new Array<boolean>(messages.length).fill(false);
  const busy = new Set<string>();
  // Every message before `unstarted` has started; every one before `prefix` is done.
  let unstarted = 0;
  let prefix = 0;
  let failure: { error: unknown } | undefined;
  /** The lowest waiting offset whose key is idle: its key's earlier messages have all finished. */
  const next = (): number | undefined => {
    while (unstarted < messages.length && started[unstarted]) unstarted += 1;
    for (let i = unstarted; i < messages.length; i++)
      if (!started[i] && !busy.has(keys[i] as string)) return i;
    return undefined;
  };
  const worker = async () => {
    for (;;) {
      if (failure || !isRunning() || isStale()) return;
      const index = next();
      if (index === undefined) return;
      const key = keys[index] as string;
      started[index] = true;
      busy.add(key);
      try {
        await handleOne(batch.topic, batch.partition, messages[index] as KafkaMessage, heartbeat);
        done[index] = true;
        while (prefix < messages.length && done[prefix]) {
          resolveOffset((messages[prefix] as KafkaMessage).offset);
          prefix += 1;
        }
        await heartbeat();
      } catch (error) {
        failure ??= { error };
        return;
      } finally {
        busy.delete(key);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, new Set(keys).size)) }, worker));
  if (failure) throw failure.error;
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

import type { Logger } from "@taituri/logging";
import { extractContext, SpanKind, withSpan } from "@taituri/telemetry";
import type { Consumer, EachMessagePayload, Kafka } from "kafkajs";
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
  /** An error that is neither permanent nor transient (a bug, most likely) is retried this often, then dead-lettered. */
  maxUnknownAttempts?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Called once per message with its outcome, for metrics. */
  onOutcome?: (topic: string, outcome: Outcome, error?: unknown) => void;
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
    maxUnknownAttempts = 5,
    retryInitialMs = 200,
    retryMaxMs = 30_000,
    onOutcome,
  } = options;
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    // A handler that waits on a retry heartbeats itself (below); this only bounds a hung process.
    sessionTimeout: 30_000,
    // Bounds how long a disconnect waits for the fetch in flight; an idle fetch returns after this.
    maxWaitTimeInMs: 1000,
    heartbeatInterval: 3_000,
  });
  const stopping = new AbortController();

  const deadLetter = async (payload: EachMessagePayload, reason: string, error: unknown) => {
    const { topic, partition, message } = payload;
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

  const eachMessage = async (payload: EachMessagePayload) => {
    const { topic, partition, message, heartbeat } = payload;
    const incoming: IncomingMessage = {
      topic,
      partition,
      offset: message.offset,
      key: message.key?.toString() ?? "",
      value: message.value ?? Buffer.alloc(0),
      headers: headersToRecord(message.headers),
    };
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
        for (let attempt = 1; ; attempt++) {
          try {
            await handle(incoming);
            onOutcome?.(topic, "processed");
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
              await deadLetter(payload, reason, error);
              onOutcome?.(topic, "dead_lettered", error);
              return;
            }
            if (stopping.signal.aborted) throw error;
            const delay = backoffMs(attempt, retryInitialMs, retryMaxMs);
            logger.warn(
              { err: error, topic, partition, offset: message.offset, attempt, delay, kind },
              "retrying message",
            );
            onOutcome?.(topic, "retried", error);
            await sleepWithHeartbeat(delay, heartbeat, stopping.signal);
            if (stopping.signal.aborted) throw error;
          }
        }
      },
    );
  };

  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({ partitionsConsumedConcurrently, eachMessage });
  return {
    consumer,
    async stop() {
      stopping.abort();
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

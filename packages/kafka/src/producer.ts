import {
  context,
  extractContext,
  injectContext,
  pseudonym,
  SpanKind,
  traceContextOf,
  withSpan,
} from "@taituri/telemetry";
import type { Kafka, Message, Producer, RecordMetadata, TopicMessages } from "kafkajs";
import { TransientError } from "./errors.ts";
import { Header } from "./headers.ts";
import { createJavaCompatiblePartitioner } from "./partitioner.ts";

export interface OutgoingMessage {
  /** The conversation id: it picks the partition and so keeps a shopper's events in order. */
  key: string;
  value: Buffer | Uint8Array;
  headers?: Record<string, string>;
  /**
   * The event's own id (event id, outbound message id, outbox entry id). In a sampled trace its
   * pseudonym is the PRODUCER span's `messaging.message.id` when it is the send's only message, and
   * it travels in a header for the CONSUMER span to do the same.
   */
  id?: string;
}

/** What code that publishes needs from Kafka: a durable, acknowledged send (tests pass a fake). */
export type Publisher = Pick<EventProducer, "send">;

export interface EventProducerOptions {
  /** Most messages one produce request carries (a single larger send still goes, alone). */
  maxBatchMessages?: number;
  /** Most bytes of keys, values and headers one produce request carries (same exception). */
  maxBatchBytes?: number;
  /**
   * Most messages waiting for an acknowledgement (queued or in flight) before a send is refused at
   * once with ProducerQueueFullError (a send larger than the bound still goes when nothing waits).
   */
  maxQueuedMessages?: number;
  /** Most bytes waiting for an acknowledgement, likewise. */
  maxQueuedBytes?: number;
}

/**
 * Refused without being queued: the broker is too slow or away and the sends already waiting fill
 * the bound. Transient: nothing was sent; the caller answers "later" (the webhook's 503) or retries.
 */
export class ProducerQueueFullError extends TransientError {}

// Half the broker's default message.max.bytes (1 MiB per partition's record batch): a full batch
// that lands on one partition is still accepted, record overhead included.
const DEFAULT_MAX_BATCH_BYTES = 512 * 1024;
// kafkajs copies a partition's message array once per message it adds (quadratic), so requests stay
// at a few hundred messages; at ~8,000 sends/s a round trip gathers about a dozen anyway (bench/).
const DEFAULT_MAX_BATCH_MESSAGES = 500;
// A caller that gives up on a send (the webhook after WEBHOOK_PUBLISH_TIMEOUT_MS) leaves it queued,
// so while the broker is away the queue would grow with every retry Meta makes. About two seconds
// of the webhook's peak (~8,000 events/s), in at most 16 MiB of a service's 512 MiB.
const DEFAULT_MAX_QUEUED_MESSAGES = 20_000;
const DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024;

/** Where the broker put one message. */
export interface Placement {
  partition: number;
  /** Undefined when the broker's answer did not say (kafkajs gives the batch's base offset). */
  offset?: string;
}

/** A message whose partition is not known (kafkajs did not ask our partitioner). */
const UNPLACED: Placement = { partition: -1 };

/** One caller's messages, waiting for the produce request that will carry them. */
interface Pending {
  topic: string;
  messages: Message[];
  bytes: number;
  /** Whether the caller wants to know where its messages went (its span is recording). */
  placed: boolean;
  resolve: (placements: Placement[]) => void;
  reject: (error: unknown) => void;
}

/**
 * A producer that only reports success once every in-sync replica has the messages (acks=all) and
 * that cannot duplicate or reorder them on its own retries (idempotent, one request in flight).
 * Each send is a PRODUCER span whose context travels in the messages' headers.
 *
 * Group commit: with one request in flight, a send that waited for its own round trip would cap
 * throughput at one send per round trip. So sends that arrive while a request is in flight queue
 * up, and the next request carries all of them (up to the batch bounds), in arrival order; each
 * caller's promise settles with the request that carried its messages. An idle producer sends at
 * once: no linger timer, so a lone webhook pays no added latency.
 */
export class EventProducer {
  private producer: Producer;
  private readonly maxBatchMessages: number;
  private readonly maxBatchBytes: number;
  private readonly maxQueuedMessages: number;
  private readonly maxQueuedBytes: number;
  private readonly queue: Pending[] = [];
  /** Messages and bytes of the sends not yet settled, queued or in flight. */
  private waitingMessages = 0;
  private waitingBytes = 0;
  /** True while a request is in flight; set and cleared synchronously, so no send is stranded. */
  private sending = false;
  /** The latest drain loop, for disconnect to wait on. */
  private draining: Promise<void> = Promise.resolve();
  /**
   * The partition kafkajs chose for each message, noted by the partitioner as it chooses: kafkajs
   * answers with a base offset per partition, not per message. A retry partitions again, and the
   * last choice is the one that was written.
   */
  private readonly partitionOf = new WeakMap<Message, number>();

  /** Set by a failed request: the next one goes through a new kafkajs producer (renewProducer). */
  private renew = false;

  private readonly kafka: Kafka;

  constructor(kafka: Kafka, options: EventProducerOptions = {}) {
    this.kafka = kafka;
    this.maxBatchMessages = options.maxBatchMessages ?? DEFAULT_MAX_BATCH_MESSAGES;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.maxQueuedMessages = options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.producer = this.createProducer();
  }

  private createProducer(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // The Java client's murmur2 partitioner: a key lands on the same partition whichever client
      // produced it (partitioner.ts: kafkajs's choice, without its BigInt arithmetic).
      createPartitioner: () => {
        const choose = createJavaCompatiblePartitioner();
        return (request) => {
          const partition = choose(request);
          this.partitionOf.set(request.message, partition);
          return partition;
        };
      },
      // Bounded, so that a send fails while its caller can still answer (the webhook's 503). kafkajs
      // warns that this may invalidate its guarantees: renewProducer is why it does not.
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  }

  /**
   * kafkajs numbers an idempotent producer's records per partition, and when a request fails after
   * its retries it takes the numbers back for the next one. If the broker had written the failed
   * request after all (only its answer was lost), the broker takes the next request under the same
   * numbers for a resend of it: acknowledged and dropped when it holds as many records, refused as
   * out of order otherwise, and every later one on that partition with it. A new producer has a new
   * producer id and numbers from zero, so what failed is at worst written twice, which the
   * consumers' idempotency keys absorb.
   */
  private async renewProducer(): Promise<void> {
    const failed = this.producer;
    this.producer = this.createProducer();
    // Its connections are of no more use; closing them may fail as the request did.
    await failed.disconnect().catch(() => {});
    await this.producer.connect();
    this.renew = false;
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  /** Waits for the queued sends to be acknowledged (or fail), then closes the connections. */
  async disconnect(): Promise<void> {
    await this.draining;
    await this.producer.disconnect();
  }

  /**
   * Sends messages to one topic; resolves when the broker has them durably. They travel together
   * in one request, possibly with other callers' messages, and keep their order.
   */
  async send(topic: string, messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await withSpan(
      "@taituri/kafka",
      `${topic} publish`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.type": "publish",
          "messaging.destination.name": topic,
          "messaging.batch.message_count": messages.length,
        },
      },
      async (span) => {
        // Only for a sampled trace: on the hot path a header costs kafkajs an allocation per message.
        const named = span.isRecording();
        // A pseudonym: a WhatsApp message id is base64 holding the shopper's number.
        if (named && messages.length === 1 && messages[0]?.id)
          span.setAttribute("messaging.message.id", pseudonym(messages[0].id));
        // Injected here, inside this call's span: a batch mixes callers, but each message's headers
        // carry the trace of the request that produced it.
        const trace = injectContext();
        let bytes = 0;
        const prepared = messages.map((message): Message => {
          const headers: Record<string, string> = { ...message.headers, ...trace };
          if (named && message.id) headers[Header.messageId] = message.id;
          bytes += Buffer.byteLength(message.key) + message.value.byteLength;
          for (const name in headers) bytes += name.length + Buffer.byteLength(headers[name] ?? "");
          // Copied now: the caller may reuse its buffer while the message waits for its request.
          return { key: message.key, value: Buffer.from(message.value), headers };
        });
        const placements = await this.enqueue(topic, prepared, bytes, named);
        // Semantic conventions: a partition when the whole send went to one, an offset per message.
        const partitions = new Set(placements.map((p) => p.partition).filter((p) => p >= 0));
        if (partitions.size === 1)
          span.setAttribute("messaging.destination.partition.id", String(placements[0]?.partition));
        if (placements.length === 1 && placements[0]?.offset !== undefined)
          span.setAttribute("messaging.kafka.offset", Number(placements[0].offset));
      },
    );
  }

  /** Messages and bytes waiting for an acknowledgement (queued or in flight). */
  get waiting(): { messages: number; bytes: number } {
    return { messages: this.waitingMessages, bytes: this.waitingBytes };
  }

  private enqueue(topic: string, messages: Message[], bytes: number, placed: boolean): Promise<Placement[]> {
    const full =
      this.waitingMessages + messages.length > this.maxQueuedMessages ||
      this.waitingBytes + bytes > this.maxQueuedBytes;
    if (full && this.waitingMessages > 0)
      return Promise.reject(
        new ProducerQueueFullError(
          `${this.waitingMessages} messages (${this.waitingBytes} bytes) already wait for Kafka; refusing ${messages.length} more`,
        ),
      );
    this.waitingMessages += messages.length;
    this.waitingBytes += bytes;
    const settle = () => {
      this.waitingMessages -= messages.length;
      this.waitingBytes -= bytes;
    };
    return new Promise((resolve, reject) => {
      this.queue.push({
        topic,
        messages,
        bytes,
        placed,
        resolve: (placements) => {
          settle();
          resolve(placements);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      if (!this.sending) this.draining = this.drain();
    });
  }

  /** Sends queued messages, one request at a time, until the queue is empty. Never rejects. */
  private async drain(): Promise<void> {
    this.sending = true;
    while (this.queue.length > 0) {
      const batch = this.takeBatch();
      try {
        if (this.renew) await this.renewProducer();
        const topicMessages = byTopic(batch);
        const answer = await this.producer.sendBatch({ acks: -1, topicMessages });
        // Worked out only for a span that is kept: this is the webhook's hot path.
        const placements = batch.some((p) => p.placed) ? this.place(topicMessages, answer) : undefined;
        for (const pending of batch)
          pending.resolve(
            pending.placed && placements ? pending.messages.map((m) => placements.get(m) ?? UNPLACED) : [],
          );
      } catch (error) {
        // The request failed as a whole (kafkajs has already retried it): nobody in it may be told
        // their messages are stored.
        this.renew = true;
        for (const pending of batch) pending.reject(error);
      }
    }
    this.sending = false;
  }

  /**
   * Each message's partition and offset: kafkajs keeps a partition's messages in the order given and
   * the broker appends them from the partition's base offset.
   */
  private place(
    topicMessages: TopicMessages[],
    answer: RecordMetadata[] | undefined,
  ): Map<Message, Placement> {
    const base = new Map<string, bigint>();
    for (const meta of answer ?? []) {
      if (meta.baseOffset !== undefined)
        base.set(`${meta.topicName}\n${meta.partition}`, BigInt(meta.baseOffset));
    }
    const placed = new Map<Message, Placement>();
    for (const { topic, messages } of topicMessages) {
      const next = new Map<number, bigint>();
      for (const message of messages) {
        const partition = this.partitionOf.get(message) ?? UNPLACED.partition;
        const start = base.get(`${topic}\n${partition}`);
        const index = next.get(partition) ?? 0n;
        next.set(partition, index + 1n);
        placed.set(
          message,
          start === undefined ? { partition } : { partition, offset: String(start + index) },
        );
      }
    }
    return placed;
  }

  /** The oldest queued sends that fit the bounds together; at least one, however large. */
  private takeBatch(): Pending[] {
    let count = 0;
    let bytes = 0;
    let taken = 0;
    for (const pending of this.queue) {
      const fits =
        count + pending.messages.length <= this.maxBatchMessages &&
        bytes + pending.bytes <= this.maxBatchBytes;
      if (taken > 0 && !fits) break;
      count += pending.messages.length;
      bytes += pending.bytes;
      taken += 1;
    }
    return this.queue.splice(0, taken);
  }
}

/** One entry per topic, messages in arrival order: kafkajs keeps that order within a partition. */
function byTopic(batch: Pending[]): TopicMessages[] {
  const topics = new Map<string, Message[]>();
  for (const pending of batch) {
    const messages = topics.get(pending.topic);
    if (messages) for (const message of pending.messages) messages.push(message);
    else topics.set(pending.topic, [...pending.messages]);
  }
  return [...topics].map(([topic, messages]) => ({ topic, messages }));
}

/** A message written earlier (an outbox entry) for `topic`, its headers holding the trace that wrote it. */
export interface TracedMessage extends OutgoingMessage {
  topic: string;
}

/**
 * Publishes messages from the traces that wrote them, not from the caller's: grouped by topic and
 * traceparent, each group sent inside its own trace, so an entry relayed later (by the next writer,
 * or by a sweeper after a crash) stays a child of the event that caused it. Messages written
 * without a trace are sent from the caller's context.
 */
export async function sendInWritersTraces(publisher: Publisher, messages: TracedMessage[]): Promise<void> {
  const groups = new Map<
    string,
    { topic: string; trace: Record<string, string>; messages: OutgoingMessage[] }
  >();
  for (const { topic, ...message } of messages) {
    const trace = traceContextOf(message.headers ?? {});
    const name = `${topic}\n${trace.traceparent ?? ""}`;
    const group = groups.get(name) ?? { topic, trace, messages: [] };
    group.messages.push(message);
    groups.set(name, group);
  }
  for (const group of groups.values()) {
    await context.with(extractContext(group.trace), () => publisher.send(group.topic, group.messages));
  }
}

import { injectContext, SpanKind, withSpan } from "@taituri/telemetry";
import { type Kafka, Partitioners, type Producer } from "kafkajs";

export interface OutgoingMessage {
  /** The conversation id: it picks the partition and so keeps a shopper's events in order. */
  key: string;
  value: Buffer | Uint8Array;
  headers?: Record<string, string>;
}

/** What code that publishes needs from Kafka: a durable, acknowledged send (tests pass a fake). */
export type Publisher = Pick<EventProducer, "send">;

/**
 * A producer that only reports success once every in-sync replica has the messages (acks=all) and
 * that cannot duplicate or reorder them on its own retries (idempotent, one request in flight).
 * Each send is a PRODUCER span whose context travels in the messages' headers.
 */
export class EventProducer {
  readonly producer: Producer;

  constructor(kafka: Kafka) {
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // The Java client's murmur2 partitioner: a key lands on the same partition whichever client
      // produced it.
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  /** Sends a batch to one topic in one request; resolves when the broker has them durably. */
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
      async () => {
        const trace = injectContext();
        await this.producer.send({
          topic,
          acks: -1,
          messages: messages.map((message) => ({
            key: message.key,
            value: Buffer.from(message.value),
            headers: { ...message.headers, ...trace },
          })),
        });
      },
    );
  }
}

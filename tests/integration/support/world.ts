import { EventProducer, Header, Records, type TopicNames } from "@taituri/kafka";
import type { ImageStore } from "@taituri/mongo";
import { generation, payment } from "@taituri/proto";
import type { Consumer, Kafka } from "kafkajs";

export type GenerationMode = "complete" | "fail" | "reject" | "silent";

/**
 * Stand-ins for the generation and payment services at the Kafka boundary: they read the requests
 * the conversation publishes and answer the way the real services will, as the test directs.
 * With `{ payment: false }` only generation is faked (a real payment service answers payments).
 */
export class FakeWorld {
  readonly generationRequests: generation.GenerationRequest[] = [];
  readonly paymentRequests: payment.PaymentRequest[] = [];
  readonly cancellations: payment.CancelOrder[] = [];
  generationMode: GenerationMode = "complete";
  readonly #kafka: Kafka;
  readonly #topics: TopicNames;
  readonly #producer: EventProducer;
  readonly #images: ImageStore;
  readonly #consumers: Consumer[] = [];
  readonly #payment: boolean;

  constructor(kafka: Kafka, topics: TopicNames, images: ImageStore, options: { payment?: boolean } = {}) {
    this.#kafka = kafka;
    this.#topics = topics;
    this.#images = images;
    this.#producer = new EventProducer(kafka);
    this.#payment = options.payment ?? true;
  }

  async start(group: string): Promise<void> {
    await this.#producer.connect();
    await this.#listen(`${group}-generation`, this.#topics.generationRequests, async (value) => {
      const request = generation.GenerationRequest.decode(value);
      this.generationRequests.push(request);
      if (this.generationMode === "silent") return;
      await this.generationResult(
        request.roundId,
        request.conversationId,
        this.generationMode,
        request.count,
      );
    });
    if (!this.#payment) return;
    await this.#listen(`${group}-payment`, this.#topics.paymentRequests, async (value, type) => {
      if (type === Records.cancelOrder.contentType) {
        this.cancellations.push(payment.CancelOrder.decode(value));
        return;
      }
      const request = payment.PaymentRequest.decode(value);
      this.paymentRequests.push(request);
      await this.paymentEvent(request.orderId, request.conversationId, {
        $case: "linkCreated",
        value: { url: `https://pay.local/${encodeURIComponent(request.orderId)}` },
      });
    });
  }

  async generationResult(
    roundId: string,
    conversationId: string,
    mode: Exclude<GenerationMode, "silent">,
    count = 3,
  ): Promise<void> {
    const designs = Array.from({ length: count }, (_, i) => ({
      id: `d${i + 1}`,
      imageId: `${roundId}/d${i + 1}`,
    }));
    if (mode === "complete") {
      for (const d of designs) {
        await this.#images.put(d.imageId, {
          bytes: Buffer.from(`png ${d.imageId}`),
          contentType: "image/png",
          filename: `${d.id}.png`,
        });
      }
    }
    const outcome: generation.GenerationResult["outcome"] =
      mode === "complete"
        ? { $case: "completed", value: { designs } }
        : mode === "fail"
          ? { $case: "failed", value: { reason: "provider unavailable" } }
          : { $case: "rejected", value: { retryAfterMs: 20 * 60_000 } };
    await this.#producer.send(this.#topics.generationResults, [
      {
        key: conversationId,
        value: generation.GenerationResult.encode({ roundId, conversationId, outcome }).finish(),
      },
    ]);
  }

  /** The order number the fake payment service gives an order: its position, as "FAKE-000n". */
  orderNumber(orderId: string): string {
    const index = this.paymentRequests.findIndex((r) => r.orderId === orderId);
    return `FAKE-${String(index + 1).padStart(4, "0")}`;
  }

  async paymentEvent(
    orderId: string,
    conversationId: string,
    outcome: payment.PaymentEvent["outcome"],
  ): Promise<void> {
    const orderNumber = this.orderNumber(orderId);
    await this.#producer.send(this.#topics.paymentEvents, [
      {
        key: conversationId,
        value: payment.PaymentEvent.encode({ orderId, conversationId, orderNumber, outcome }).finish(),
      },
    ]);
  }

  async stop(): Promise<void> {
    for (const consumer of this.#consumers) await consumer.disconnect();
    await this.#producer.disconnect();
  }

  async #listen(
    groupId: string,
    topic: string,
    handle: (value: Buffer, type: string | undefined) => Promise<void>,
  ): Promise<void> {
    const consumer = this.#kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) =>
        handle(message.value ?? Buffer.alloc(0), message.headers?.[Header.type]?.toString()),
    });
    this.#consumers.push(consumer);
  }
}

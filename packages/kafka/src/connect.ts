import type { Admin, Kafka } from "kafkajs";
import { createKafka, type KafkaOptions } from "./client.ts";
import { EventProducer } from "./producer.ts";
import { ensureTopics, type TopicSpec } from "./topics.ts";

export interface KafkaHandle {
  kafka: Kafka;
  admin: Admin;
  producer: EventProducer;
  /** Readiness: the cluster answers a metadata request. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * What every service does with Kafka at start-up: connect, create any missing topic (idempotent,
 * so services may start in any order), and open the idempotent producer.
 */
export async function connectKafka(options: KafkaOptions & { topics: TopicSpec[] }): Promise<KafkaHandle> {
  const kafka = createKafka(options);
  const admin = kafka.admin();
  await admin.connect();
  const created = await ensureTopics(admin, options.topics);
  if (created.length > 0) options.logger.info({ topics: created }, "created Kafka topics");
  const producer = new EventProducer(kafka);
  await producer.connect();
  return {
    kafka,
    admin,
    producer,
    async ping() {
      await admin.describeCluster();
    },
    async close() {
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}

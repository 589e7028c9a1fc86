import type { Admin, Kafka } from "kafkajs";
import { createKafka, type KafkaOptions } from "./client.ts";
import { EventProducer, type EventProducerOptions } from "./producer.ts";
import { ensureTopics, type TopicSpec } from "./topics.ts";

export interface KafkaHandle {
  kafka: Kafka;
  admin: Admin;
  producer: EventProducer;
  /**
   * What a service needs of Kafka before it works: connect, create any missing topic (idempotent,
   * so services may start in any order), and open the idempotent producer. Safe to call again
   * after a failure (a broker away at start-up): each part it reaches again is a no-op or a reconnect.
   */
  connect(): Promise<void>;
  /** Readiness: the cluster answers a metadata request. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The clients of a Kafka connection, not yet connected: connect() reaches the brokers. */
export function openKafka(
  options: KafkaOptions & { topics: TopicSpec[]; producer?: EventProducerOptions },
): KafkaHandle {
  let connected = false;
  // Until the first connect succeeds its caller reports each failed one (StartStep): kafkajs's
  // lines for every refused connection and retry would bury that line.
  const kafka = createKafka({ ...options, quiet: () => !connected || options.quiet?.() === true });
  const admin = kafka.admin();
  const producer = new EventProducer(kafka, options.producer);
  let topicsEnsured = false;
  return {
    kafka,
    admin,
    producer,
    async connect() {
      await admin.connect();
      if (!topicsEnsured) {
        const created = await ensureTopics(admin, options.topics);
        if (created.length > 0) options.logger.info({ topics: created }, "created Kafka topics");
        topicsEnsured = true;
      }
      await producer.connect();
      connected = true;
    },
    async ping() {
      await admin.describeCluster();
    },
    async close() {
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}

/** openKafka, connected: fails when the brokers cannot be reached (tools, tests). */
export async function connectKafka(options: KafkaOptions & { topics: TopicSpec[] }): Promise<KafkaHandle> {
  const handle = openKafka(options);
  await handle.connect();
  return handle;
}

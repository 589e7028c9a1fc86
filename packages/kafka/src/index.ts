// The consumers' backoff, for the services' own retries too (it lives in @taituri/pacing).
export { backoffMs } from "@taituri/pacing";
export { createKafka, type KafkaOptions } from "./client.ts";
export { connectKafka, type KafkaHandle, openKafka } from "./connect.ts";
export {
  type ConsumerOptions,
  type IncomingMessage,
  type Outcome,
  type RunningConsumer,
  startConsumer,
} from "./consumer.ts";
export {
  classify,
  type ErrorClass,
  isTransientKafkaError,
  PermanentError,
  TransientError,
} from "./errors.ts";
export { Header, headersToRecord } from "./headers.ts";
export {
  EventProducer,
  type OutgoingMessage,
  ProducerQueueFullError,
  type Publisher,
  sendInWritersTraces,
  type TracedMessage,
} from "./producer.ts";
export {
  contentType,
  decodeRecord,
  encodeRecord,
  kindOf,
  type RecordKind,
  Records,
  TOPIC_RECORDS,
} from "./records.ts";
export { type KafkaSecurity, type KafkaSecuritySettings, kafkaSecurity } from "./security.ts";
export {
  deadLetterTopic,
  ensureTopics,
  type TopicNames,
  type TopicSpec,
  topicNames,
  topicSpecs,
} from "./topics.ts";

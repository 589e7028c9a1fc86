import { redact } from "@taituri/telemetry";
import type { KafkaMessage } from "kafkajs";
import { Header, headersToRecord } from "./headers.ts";
import type { OutgoingMessage } from "./producer.ts";

/** Where a dead-lettered record came from, and why it could not be handled. */
export interface DeadLetterSource {
  topic: string;
  partition: number;
  reason: string;
  error: unknown;
  at: Date;
}

/**
 * The dead-letter copy of `message`: the record as it was (key, value, headers), so that it can be
 * replayed to its topic, plus headers saying why and from where. Those are read by people for 30
 * days; error messages name rounds and orders, and so phone numbers and BSUIDs, written here as
 * their pseudonyms, as in a log line.
 */
export function deadLetterOf(message: KafkaMessage, source: DeadLetterSource): OutgoingMessage {
  const { error } = source;
  return {
    key: message.key?.toString() ?? "",
    value: message.value ?? Buffer.alloc(0),
    headers: {
      ...headersToRecord(message.headers),
      [Header.dlqReason]: redact(source.reason),
      [Header.dlqError]: redact(error instanceof Error ? `${error.name}: ${error.message}` : String(error)),
      [Header.dlqSourceTopic]: source.topic,
      [Header.dlqSourcePartition]: String(source.partition),
      [Header.dlqSourceOffset]: message.offset,
      [Header.dlqAt]: source.at.toISOString(),
    },
  };
}

import type { IHeaders } from "kafkajs";

/** Kafka headers as strings (kafkajs hands them over as Buffers, or arrays when a key repeats). */
export function headersToRecord(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    if (last !== undefined) out[key] = last.toString();
  }
  return out;
}

/** Header names we set ourselves, beside the W3C trace context ones. */
export const Header = {
  /** The protobuf message type of the value, e.g. "inbound.v1.InboundEvent". */
  type: "content-type",
  /**
   * The event's own id, on messages of sampled traces only: the CONSUMER span names the message
   * with it as the PRODUCER span did (`messaging.message.id`, as a pseudonym).
   */
  messageId: "message-id",
  /** Why a message was dead-lettered, and where it came from. */
  dlqReason: "dlq-reason",
  dlqError: "dlq-error",
  dlqSourceTopic: "dlq-source-topic",
  dlqSourcePartition: "dlq-source-partition",
  dlqSourceOffset: "dlq-source-offset",
  dlqAt: "dlq-at",
} as const;

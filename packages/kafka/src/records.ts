import {
  type Encodable,
  encodeMessage,
  fulfilment,
  generation,
  inbound,
  outbound,
  payment,
} from "@taituri/proto/events";
import { PermanentError } from "./errors.ts";
import { Header } from "./headers.ts";
import type { TopicNames } from "./topics.ts";

/** A generated protobuf message type, as far as the registry uses it. */
interface MessageType<T> extends Encodable<T> {
  decode(input: Uint8Array): T;
}

/** One kind of record: its protobuf message type and the content type that names it in the header. */
export interface RecordKind<T> {
  readonly messageType: string;
  readonly contentType: string;
  readonly codec: MessageType<T>;
}

/** `content-type` header of a protobuf record: "application/x-protobuf; messageType=<full name>". */
export const contentType = (messageType: string) => `application/x-protobuf; messageType=${messageType}`;

const kind = <T>(messageType: string, codec: MessageType<T>): RecordKind<T> => ({
  messageType,
  contentType: contentType(messageType),
  codec,
});

/** Every kind of record the services exchange through Kafka. */
export const Records = {
  inboundEvent: kind("inbound.v1.InboundEvent", inbound.InboundEvent),
  outboundMessage: kind("outbound.v1.OutboundMessage", outbound.OutboundMessage),
  generationRequest: kind("generation.v1.GenerationRequest", generation.GenerationRequest),
  generationResult: kind("generation.v1.GenerationResult", generation.GenerationResult),
  paymentRequest: kind("payment.v1.PaymentRequest", payment.PaymentRequest),
  cancelOrder: kind("payment.v1.CancelOrder", payment.CancelOrder),
  paymentEvent: kind("payment.v1.PaymentEvent", payment.PaymentEvent),
  orderPaid: kind("fulfilment.v1.OrderPaid", fulfilment.OrderPaid),
} as const;

/**
 * What each topic carries, keyed as topicNames says. The first kind is
 * also what a record without a content-type header is read as (records of older producers).
 */
export const TOPIC_RECORDS = {
  inbound: [Records.inboundEvent],
  outbound: [Records.outboundMessage],
  generationRequests: [Records.generationRequest],
  generationResults: [Records.generationResult],
  paymentRequests: [Records.paymentRequest, Records.cancelOrder],
  paymentEvents: [Records.paymentEvent],
  orders: [Records.orderPaid],
} as const satisfies Record<keyof TopicNames, readonly RecordKind<unknown>[]>;

/** A record's value and content-type header, ready for a send (spread into an OutgoingMessage). */
export function encodeRecord<T>(
  kind: RecordKind<T>,
  message: T,
): { value: Buffer; headers: Record<string, string> } {
  const bytes = encodeMessage(kind.codec, message);
  return {
    // encodeMessage hands over a fresh array: wrapping it copies nothing.
    value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    headers: { [Header.type]: kind.contentType },
  };
}

/** The kind of a record among those its topic carries; another content type is permanent. */
export function kindOf<const K extends readonly RecordKind<unknown>[]>(
  kinds: K,
  record: { topic: string; headers: Record<string, string> },
): K[number] {
  const type = record.headers[Header.type];
  const found = type ? kinds.find((k) => k.contentType === type) : kinds[0];
  if (!found)
    throw new PermanentError(
      `a record of type "${type}" on ${record.topic}, which carries ${kinds.map((k) => k.messageType).join(", ")}`,
    );
  return found;
}

/**
 * Decodes a record as `kind`: one whose content type names another kind, or whose bytes are not
 * that message, is a PermanentError (dead-lettered, never retried: it cannot decode later either).
 */
export function decodeRecord<T>(
  kind: RecordKind<T>,
  record: { topic: string; value: Uint8Array; headers: Record<string, string> },
): T {
  const type = record.headers[Header.type];
  if (type && type !== kind.contentType)
    throw new PermanentError(`a record of type "${type}" on ${record.topic}, read as ${kind.messageType}`);
  try {
    return kind.codec.decode(record.value);
  } catch (error) {
    throw new PermanentError(
      `undecodable ${kind.messageType} on ${record.topic}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

import type { Admin, ITopicConfig } from "kafkajs";

/**
 * Every topic the system uses. All but `orders` are keyed by conversation id
 * ("<phone_number_id>:<shopper id>"), so one shopper's events stay in order on one partition while
 * different shoppers spread out. `orders` is keyed by order number: it leaves for the shop, which
 * has no business with the shopper's phone number.
 */
export function topicNames(prefix: string) {
  return {
    /** ingress -> conversation: normalised webhook events (inbound.v1.InboundEvent). */
    inbound: `${prefix}inbound.v1`,
    /** conversation -> ingress dispatcher: messages to send (outbound.v1.OutboundMessage). */
    outbound: `${prefix}outbound.v1`,
    /** conversation -> generation: paid rounds (generation.v1.GenerationRequest). */
    generationRequests: `${prefix}generation.requests.v1`,
    /** generation -> conversation: what became of each round (generation.v1.GenerationResult). */
    generationResults: `${prefix}generation.results.v1`,
    /** conversation -> payment: checkouts (payment.v1.PaymentRequest). */
    paymentRequests: `${prefix}payment.requests.v1`,
    /** payment -> conversation: links, payments, expiries (payment.v1.PaymentEvent). */
    paymentEvents: `${prefix}payment.events.v1`,
    /** payment -> fulfilment deliverer: paid orders for the shop (fulfilment.v1.OrderPaid). */
    orders: `${prefix}orders.v1`,
  };
}
export type TopicNames = ReturnType<typeof topicNames>;

/** Where a topic's poison messages go. */
export const deadLetterTopic = (topic: string) => `${topic}.dlq`;

export interface TopicSpec {
  name: string;
  partitions: number;
  /** Broker-side overrides, e.g. retention. */
  configs?: Record<string, string>;
}

/** The topics and their dead-letter twins, with the documented partition count. */
export function topicSpecs(names: TopicNames, partitions: number): TopicSpec[] {
  return Object.values(names).flatMap((name): TopicSpec[] => [
    // A week, whatever the broker's default: long enough to replay a consumer group after a long
    // outage, short enough that a shopper's events do not outlive their erasure by more
    // (docs/security.md, "Retention and erasure").
    { name, partitions, configs: { "retention.ms": String(7 * 24 * 3600 * 1000) } },
    // Dead letters are read by people, not by throughput: one partition keeps them in arrival order.
    // A dead letter is the record as it was (a replay needs it), shoppers' text included, so it is
    // kept no longer than its topic keeps the original: a week to look and replay (the dead-letter
    // alert fires within minutes), and an erased shopper's words are gone from every topic within
    // the same 7 days. Only the broker's super user may read it (packages/kafka/data/access.json
    // lets no service). They can hold a whole webhook body (Meta sends up to 3 MB), over the
    // broker's 1 MiB default for a record batch.
    {
      name: deadLetterTopic(name),
      partitions: 1,
      configs: {
        "retention.ms": String(7 * 24 * 3600 * 1000),
        "max.message.bytes": String(4 * 1024 * 1024),
      },
    },
  ]);
}

/** Creates whatever is missing; existing topics are left as they are (safe to run at every start). */
export async function ensureTopics(
  admin: Admin,
  specs: TopicSpec[],
  replicationFactor = -1,
): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.name));
  if (missing.length === 0) return [];
  const topics: ITopicConfig[] = missing.map((spec) => ({
    topic: spec.name,
    numPartitions: spec.partitions,
    // -1 lets the broker apply default.replication.factor: 1 on a dev broker, 3 in production.
    replicationFactor,
    configEntries: Object.entries(spec.configs ?? {}).map(([name, value]) => ({ name, value })),
  }));
  try {
    // Services starting together race to create the same topics: kafkajs resolves when the only
    // refusals are "already exists" (another service won), and throws any other.
    await admin.createTopics({ topics, waitForLeaders: true });
  } catch (error) {
    // Whatever failed on the way (waiting for leaders, say), what counts is that every topic exists.
    const again = new Set(await admin.listTopics());
    if (!missing.every((spec) => again.has(spec.name))) throw topicCreationError(error);
  }
  return missing.map((spec) => spec.name);
}

/** kafkajs's "Topic creation errors" names neither the topics nor the reasons: this error does. */
function topicCreationError(error: unknown): unknown {
  const refusals = (error as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(refusals)) return error;
  const reasons = refusals.map((refusal: { topic?: string; message?: string }) =>
    [refusal.topic, refusal.message].filter(Boolean).join(": "),
  );
  return new Error(`Kafka refused to create topics: ${reasons.join("; ")}`, { cause: error });
}

/**
 * The floor lone.ts compares the webhook with: a bare kafkajs producer (the library alone, none of
 * @taituri/kafka) sending one event-sized record at a time with acks=all and awaiting each. In its
 * own process, so it can be pinned to the core ingress gets: forked by lone.ts, it receives one
 * BareSendSpec over IPC, sends the warm-up and then the measured records, answers with each
 * measured send's latency, and exits. Without our request-queue fix (packages/kafka), so kafkajs
 * prints a TimeoutNegativeWarning: its idle loop, as the library alone has it.
 */
import { randomBytes } from "node:crypto";
import { Kafka, logLevel, Partitioners, type SASLOptions } from "kafkajs";

export interface BareSendSpec {
  brokers: string[];
  sasl?: SASLOptions;
  topic: string;
  warmup: number;
  count: number;
  /** Bytes of each record's value: about an encoded inbound event's. */
  valueBytes: number;
  /** Distinct keys, like conversation ids: they spread the records over the partitions. */
  keys: number;
}

export interface BareSendResult {
  /** Each measured send, in ms, in the order sent. */
  latenciesMs: number[];
  /** What the broker acknowledged (warm-up included). */
  acknowledged: number;
}

async function measure(spec: BareSendSpec): Promise<BareSendResult> {
  const kafka = new Kafka({
    clientId: "bench-bare-send",
    brokers: spec.brokers,
    ...(spec.sasl ? { sasl: spec.sasl } : {}),
    logLevel: logLevel.WARN,
  });
  const producer = kafka.producer({
    idempotent: false,
    allowAutoTopicCreation: false,
    // The Java client's murmur2, as ingress uses: the same key lands on the same partition.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    const value = randomBytes(spec.valueBytes);
    // The content type ingress puts on an event: the same header bytes travel with each record.
    const headers = { "content-type": "application/x-protobuf; messageType=inbound.v1.InboundEvent" };
    const latenciesMs: number[] = [];
    let acknowledged = 0;
    for (let i = 0; i < spec.warmup + spec.count; i++) {
      const key = `106540352242922:1555${String(1_000_000 + (i % spec.keys)).slice(1)}`;
      const started = performance.now();
      await producer.send({ topic: spec.topic, acks: -1, messages: [{ key, value, headers }] });
      const ms = performance.now() - started;
      acknowledged += 1;
      if (i >= spec.warmup) latenciesMs.push(ms);
    }
    return { latenciesMs, acknowledged };
  } finally {
    await producer.disconnect();
  }
}

// Forked by lone.ts: one spec in, one result out.
if (process.send) {
  process.once("message", (spec: BareSendSpec) => {
    measure(spec).then(
      (result) => process.send?.({ result }, () => process.exit(0)),
      (error: unknown) => process.send?.({ error: String(error) }, () => process.exit(1)),
    );
  });
}

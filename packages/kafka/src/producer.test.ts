import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { context, pseudonym, trace, withSpan } from "@taituri/telemetry";
import { startTelemetry } from "@taituri/telemetry/sdk";
import type {
  ICustomPartitioner,
  Kafka,
  Message,
  ProducerBatch,
  ProducerConfig,
  RecordMetadata,
} from "kafkajs";
import { classify } from "./errors.ts";
import {
  EventProducer,
  type EventProducerOptions,
  type OutgoingMessage,
  ProducerQueueFullError,
} from "./producer.ts";

// A real tracer and the W3C propagator, so headers carry trace context. The SDK only installs a
// tracer with at least one span processor; this one keeps what it is given for the span tests.
const ended: ReadableSpan[] = [];
const keep = {
  onStart() {},
  onEnd: (span: ReadableSpan) => ended.push(span),
  forceFlush: async () => {},
  shutdown: async () => {},
};
const telemetry = startTelemetry({ serviceName: "producer-test", spanProcessors: [keep] });
after(() => telemetry.shutdown());

// A regression here would leave a send waiting forever: fail the test instead.
const bounded = { timeout: 5_000 };

interface Request {
  batch: ProducerBatch;
  ack(): void;
  fail(error: Error): void;
}

/**
 * A kafkajs client whose producer records each sendBatch and lets the test acknowledge or fail it.
 * Like kafkajs, it asks the producer's partitioner for each message (over `partitions` partitions)
 * and answers an acknowledged request with a base offset per partition, counting from 100.
 */
function fakeKafka(options: EventProducerOptions = {}, partitions = 3) {
  const requests: Request[] = [];
  let disconnected = false;
  let created = 0;
  /** Connects to fail, next first: a test pushes an error to have the next connect throw it. */
  const connectFailures: Error[] = [];
  const nextOffset = new Map<string, number>();
  /** Per key, the partition and offset each of its messages was given, in order. */
  const placed = new Map<string, { partition: number; offset: number }[]>();
  let partitioner: ReturnType<ICustomPartitioner> | undefined;
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    partitionErrorCode: 0,
    replicas: [1],
    isr: [1],
  }));
  const answer = (batch: ProducerBatch): RecordMetadata[] => {
    const out: RecordMetadata[] = [];
    for (const { topic, messages } of batch.topicMessages ?? []) {
      const base = new Map<number, number>();
      for (const message of messages) {
        const partition = partitioner?.({ topic, partitionMetadata, message }) ?? 0;
        const at = `${topic}/${partition}`;
        const offset = nextOffset.get(at) ?? 100;
        nextOffset.set(at, offset + 1);
        if (!base.has(partition)) base.set(partition, offset);
        const key = String(message.key);
        placed.set(key, [...(placed.get(key) ?? []), { partition, offset }]);
      }
      for (const [partition, baseOffset] of base)
        out.push({ topicName: topic, partition, errorCode: 0, baseOffset: String(baseOffset) });
    }
    return out;
  };
  const producer = {
    connect: async () => {
      const failure = connectFailures.shift();
      if (failure) throw failure;
    },
    disconnect: async () => {
      disconnected = true;
    },
    sendBatch: (batch: ProducerBatch) =>
      new Promise((resolve, reject) => {
        requests.push({ batch, ack: () => resolve(answer(batch)), fail: reject });
      }),
  };
  const kafka = {
    producer: (config: ProducerConfig) => {
      created++;
      partitioner = config.createPartitioner?.();
      return producer;
    },
  } as unknown as Kafka;
  return {
    events: new EventProducer(kafka, options),
    requests,
    placed,
    connectFailures,
    disconnected: () => disconnected,
    created: () => created,
  };
}

const msg = (key: string, value = key): OutgoingMessage => ({ key, value: Buffer.from(value) });

/** What a request carried: "topic:key" per message, in the order kafkajs was given them. */
const carried = (request: Request | undefined) =>
  (request?.batch.topicMessages ?? []).flatMap(({ topic, messages }) =>
    messages.map((m: Message) => `${topic}:${String(m.key)}`),
  );

/** Tracks whether a send has settled and how, without awaiting it. */
function watch(promise: Promise<void>) {
  const state = { settled: false, error: undefined as unknown };
  promise.then(
    () => {
      state.settled = true;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

/** Lets every pending promise continuation run. */
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Acknowledges each request as it comes (a bounded number of rounds), then awaits the sends. */
async function ackAll(requests: Request[], sends: Promise<void>[]) {
  for (let round = 0; round < 20; round++) {
    for (const request of requests) request.ack();
    await tick();
  }
  await Promise.all(sends);
}

test(
  "an idle producer sends at once, and the send resolves only when Kafka acknowledges",
  bounded,
  async () => {
    const { events, requests } = fakeKafka();
    const sent = events.send("t", [msg("a")]);
    assert.equal(requests.length, 1, "no linger: the request leaves in the same tick");
    assert.equal(requests[0]?.batch.acks, -1);
    const state = watch(sent);
    await tick();
    assert.equal(state.settled, false);
    requests[0]?.ack();
    await sent;
  },
);

test("sends arriving during a request go together in the next one, in arrival order", bounded, async () => {
  const { events, requests } = fakeKafka();
  const first = events.send("t1", [msg("a")]);
  const b = watch(events.send("t1", [msg("b1"), msg("b2")]));
  const c = watch(events.send("t2", [msg("c")]));
  const d = watch(events.send("t1", [msg("d")]));
  await tick();
  assert.equal(requests.length, 1, "one request in flight at a time");

  requests[0]?.ack();
  await first;
  assert.equal(requests.length, 2);
  // Grouped per topic for kafkajs; within a topic (and so within a partition) arrival order holds.
  assert.deepEqual(carried(requests[1]), ["t1:b1", "t1:b2", "t1:d", "t2:c"]);
  await tick();
  assert.deepEqual([b.settled, c.settled, d.settled], [false, false, false], "not before their own ack");

  requests[1]?.ack();
  await tick();
  assert.deepEqual(
    [b, c, d].map((s) => [s.settled, s.error]),
    [
      [true, undefined],
      [true, undefined],
      [true, undefined],
    ],
  );
  assert.equal(requests.length, 2, "nothing left to send");
});

test("a failed request rejects every send it carried, and the next request goes on", bounded, async () => {
  const { events, requests } = fakeKafka();
  const first = events.send("t", [msg("a")]);
  const b = events.send("t", [msg("b")]);
  const c = events.send("t", [msg("c")]);
  requests[0]?.ack();
  await first;
  const boom = new Error("NOT_ENOUGH_REPLICAS");
  requests[1]?.fail(boom);
  await assert.rejects(b, (error) => error === boom);
  await assert.rejects(c, (error) => error === boom);

  const later = events.send("t", [msg("d")]);
  await tick();
  assert.equal(requests.length, 3);
  requests[2]?.ack();
  await later;
});

test(
  "after a failed request the next goes through a new kafkajs producer, so a new producer id",
  bounded,
  async () => {
    const { events, requests, created, disconnected, connectFailures } = fakeKafka();
    const first = events.send("t", [msg("a")]);
    requests[0]?.fail(new Error("Request Produce(key: 0, version: 7) timed out"));
    await assert.rejects(first);
    assert.equal(created(), 1, "not before a request needs it");

    // kafkajs gave the failed request's sequence numbers back: the next request must not reuse them
    // under the same producer id, in case the broker wrote the failed one.
    const second = events.send("t", [msg("b")]);
    await tick();
    assert.equal(created(), 2, "a new producer");
    assert.ok(disconnected(), "the failed one closed");
    requests[1]?.ack();
    await second;

    const third = events.send("t", [msg("c")]);
    assert.equal(requests.length, 3, "one renewal per failure: the next request goes at once");
    requests[2]?.ack();
    await third;
    assert.equal(created(), 2);

    // A renewal that cannot connect fails its request, and the next request tries again.
    const fourth = events.send("t", [msg("d")]);
    const down = new Error("Connection error: connect ECONNREFUSED");
    requests[3]?.fail(down);
    await assert.rejects(fourth);
    connectFailures.push(down);
    await assert.rejects(events.send("t", [msg("e")]), (error) => error === down);
    assert.equal(requests.length, 4, "nothing sent through a producer that is not connected");
    const sixth = events.send("t", [msg("f")]);
    await tick();
    assert.equal(created(), 4);
    requests[4]?.ack();
    await sixth;
  },
);

test("a request never exceeds the message bound; one larger send goes alone, unsplit", bounded, async () => {
  const { events, requests } = fakeKafka({ maxBatchMessages: 3 });
  const sends = [
    events.send("t", [msg("a")]),
    events.send("t", [msg("b1"), msg("b2")]),
    events.send("t", [msg("c1"), msg("c2")]),
    events.send("t", [msg("d")]),
    events.send("t", [msg("e1"), msg("e2"), msg("e3"), msg("e4")]),
    events.send("t", [msg("f")]),
  ];
  await ackAll(requests, sends);
  assert.deepEqual(requests.map(carried), [
    ["t:a"],
    ["t:b1", "t:b2"],
    ["t:c1", "t:c2", "t:d"],
    ["t:e1", "t:e2", "t:e3", "t:e4"],
    ["t:f"],
  ]);
});

test("a request never exceeds the byte bound (keys, values and headers)", bounded, async () => {
  // A 1-byte key, a 200-byte value and the producer span's traceparent header (11 + 55 bytes).
  const perMessage = 1 + 200 + 66;
  const { events, requests } = fakeKafka({ maxBatchBytes: 2 * perMessage });
  const sends = ["a", "b", "c", "d", "e"].map((key) => events.send("t", [msg(key, "x".repeat(200))]));
  await ackAll(requests, sends);
  assert.deepEqual(requests.map(carried), [["t:a"], ["t:b", "t:c"], ["t:d", "t:e"]]);
});

test(
  "each message carries its own caller's trace context and headers, whoever it shares a request with",
  bounded,
  async () => {
    const { events, requests } = fakeKafka();
    const first = events.send("t", [msg("a")]);
    const callers = ["b", "c"].map((key) =>
      withSpan("test", `caller ${key}`, {}, async () => {
        const traceId = trace.getActiveSpan()?.spanContext().traceId;
        await events.send("t", [{ ...msg(key), headers: { "x-caller": key } }]);
        return traceId;
      }),
    );
    requests[0]?.ack();
    await first;
    requests[1]?.ack();
    const traceIds = await Promise.all(callers);

    const messages = requests[1]?.batch.topicMessages?.[0]?.messages ?? [];
    assert.equal(messages.length, 2);
    const [b, c] = messages.map((m) => m.headers as Record<string, string>);
    assert.equal(b?.["x-caller"], "b");
    assert.equal(c?.["x-caller"], "c");
    assert.equal(b?.traceparent?.split("-")[1], traceIds[0]);
    assert.equal(c?.traceparent?.split("-")[1], traceIds[1]);
    assert.notEqual(traceIds[0], traceIds[1]);
  },
);

test("a value is sent as exactly its own bytes, copied when send is called", bounded, async () => {
  const { events, requests } = fakeKafka();
  const pool = Buffer.from("..hello..");
  // A view into a larger buffer, as protobuf's writer may return.
  const view = new Uint8Array(pool.buffer, pool.byteOffset + 2, 5);
  const first = events.send("t", [{ key: "a", value: Buffer.from("a") }]);
  const sent = events.send("t", [{ key: "k", value: view }]);
  pool.write("HELLO", 2); // the caller reuses its buffer while the message is queued
  requests[0]?.ack();
  await first;
  requests[1]?.ack();
  await sent;
  assert.equal(String(requests[1]?.batch.topicMessages?.[0]?.messages[0]?.value), "hello");
});

test("disconnect waits until queued sends are acknowledged", bounded, async () => {
  const { events, requests, disconnected } = fakeKafka();
  const first = events.send("t", [msg("a")]);
  const second = events.send("t", [msg("b")]);
  const closing = events.disconnect();
  requests[0]?.ack();
  await first;
  await tick();
  assert.equal(disconnected(), false, "the queued send still goes out");
  requests[1]?.ack();
  await second;
  await closing;
  assert.equal(disconnected(), true);
});

test("an empty send sends nothing", bounded, async () => {
  const { events, requests } = fakeKafka();
  await events.send("t", []);
  assert.equal(requests.length, 0);
});

test(
  "each PRODUCER span says where the broker put its messages, and names a lone message",
  bounded,
  async () => {
    const { events, requests, placed } = fakeKafka({}, 3);
    ended.length = 0;
    const first = events.send("t", [{ ...msg("k0"), id: "wamid.first" }]);
    // These queue behind the first and share the next request; wamid.a is its partition's second.
    const earlier = events.send("t", [{ ...msg("conversation-a"), id: "wamid.earlier" }]);
    const single = events.send("t", [{ ...msg("conversation-a"), id: "wamid.a" }]);
    const sameKey = events.send("t", [msg("conversation-b"), msg("conversation-b")]);
    const keys = ["x1", "x2", "x3", "x4", "x5", "x6"];
    const spread = events.send(
      "t",
      keys.map((key) => msg(key)),
    );
    await ackAll(requests, [first, earlier, single, sameKey, spread]);

    const span = (count: number, id?: string) => {
      const found = ended.filter(
        (s) =>
          s.name === "t publish" &&
          s.attributes["messaging.batch.message_count"] === count &&
          s.attributes["messaging.message.id"] === (id === undefined ? undefined : pseudonym(id)),
      );
      assert.equal(found.length, 1, `one span of ${count} message(s) with id ${id}`);
      return found[0]?.attributes ?? {};
    };
    // The id itself travels in a header, for the consumer's span; a message without one has none.
    const headerOf = (key: string) =>
      requests
        .flatMap((r) => r.batch.topicMessages ?? [])
        .flatMap((t) => t.messages)
        .filter((m) => String(m.key) === key)
        .map((m) => m.headers?.["message-id"]);
    assert.deepEqual(headerOf("k0"), ["wamid.first"]);
    assert.deepEqual(headerOf("conversation-b"), [undefined, undefined]);
    // What the broker was told, message by message, is what the spans report.
    const where = (key: string) => placed.get(key) ?? [];
    const [k0] = where("k0");
    assert.equal(k0?.offset, 100, "the first record of its partition");
    assert.deepEqual(
      [
        span(1, "wamid.first")["messaging.destination.partition.id"],
        span(1, "wamid.first")["messaging.kafka.offset"],
      ],
      [String(k0?.partition), k0?.offset],
    );
    const [, a] = where("conversation-a");
    assert.deepEqual(
      [
        span(1, "wamid.a")["messaging.destination.partition.id"],
        span(1, "wamid.a")["messaging.kafka.offset"],
      ],
      [String(a?.partition), a?.offset],
    );
    const b = span(2);
    assert.equal(b["messaging.destination.partition.id"], String(where("conversation-b")[0]?.partition));
    assert.equal(b["messaging.kafka.offset"], undefined, "two messages have no single offset");
    const partitions = new Set(keys.map((key) => where(key)[0]?.partition));
    assert.ok(partitions.size > 1, "the six keys land on more than one partition");
    assert.equal(
      span(6)["messaging.destination.partition.id"],
      undefined,
      "nor does a send spread over partitions",
    );
  },
);

test(
  "a send in an unsampled trace adds no message-id header: none of its spans is kept",
  bounded,
  async () => {
    const { events, requests } = fakeKafka();
    const unsampled = trace.setSpanContext(context.active(), {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 0,
    });
    const sent = context.with(unsampled, () => events.send("t", [{ ...msg("k"), id: "wamid.unsampled" }]));
    await ackAll(requests, [sent]);
    const [message] = requests[0]?.batch.topicMessages?.[0]?.messages ?? [];
    assert.equal(message?.headers?.["message-id"], undefined);
    assert.match(String(message?.headers?.traceparent), /-00$/, "the trace context still travels, unsampled");
  },
);

test(
  "sends over the message bound are refused at once, and every send taken is still stored",
  bounded,
  async () => {
    const { events, requests } = fakeKafka({ maxQueuedMessages: 3 });
    // The broker does not answer: the first request stays in flight, the next sends queue behind it.
    const taken = [events.send("t", [msg("a")]), events.send("t", [msg("b1"), msg("b2")])];
    const refused = events.send("t", [msg("c")]);
    await assert.rejects(refused, (error) => error instanceof ProducerQueueFullError);
    await assert.rejects(refused, (error) => classify(error) === "transient");
    assert.deepEqual(events.waiting.messages, 3);
    assert.deepEqual(requests.map(carried), [["t:a"]], "the refused send was never queued");

    await ackAll(requests, taken);
    assert.deepEqual(requests.map(carried), [["t:a"], ["t:b1", "t:b2"]]);
    assert.deepEqual(events.waiting, { messages: 0, bytes: 0 });
    // Room again once acknowledged.
    const after = events.send("t", [msg("d")]);
    await ackAll(requests, [after]);
    assert.deepEqual(carried(requests.at(-1)), ["t:d"]);
  },
);

test("sends over the byte bound are refused; a failed request frees its room", bounded, async () => {
  const perMessage = 1 + 200 + 66;
  const { events, requests } = fakeKafka({ maxQueuedBytes: 2 * perMessage });
  const first = events.send("t", [msg("a", "x".repeat(200))]);
  const second = events.send("t", [msg("b", "x".repeat(200))]);
  await assert.rejects(events.send("t", [msg("c", "x".repeat(200))]), ProducerQueueFullError);
  const boom = new Error("REQUEST_TIMED_OUT");
  requests[0]?.fail(boom);
  await assert.rejects(first, (error) => error === boom);
  const third = events.send("t", [msg("d", "x".repeat(200))]);
  await ackAll(requests, [second, third]);
  assert.deepEqual(requests.slice(1).flatMap(carried), ["t:b", "t:d"]);
});

test("one send larger than the bound still goes when nothing waits", bounded, async () => {
  const { events, requests } = fakeKafka({ maxQueuedMessages: 2 });
  const big = events.send("t", [msg("a"), msg("b"), msg("c")]);
  await ackAll(requests, [big]);
  assert.deepEqual(requests.map(carried), [["t:a", "t:b", "t:c"]]);
});

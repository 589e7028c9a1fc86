/**
 * What `npm run dlq` (scripts/dlq.ts) does with dead letters: reads the `<topic>.dlq` topics, selects,
 * describes without showing a shopper's ids, and turns a dead letter back into the record it was.
 * A replay is remembered on a topic of its own (`replayMarkerTopic`), keyed by the dead letter, so
 * a second replay sends nothing; should the CLI die between a send and its marker, the consumers'
 * idempotency keys drop the one duplicate, as they drop any redelivery.
 */
import { parseArgs } from "node:util";
import { pseudonym, redact } from "@taituri/logging";
import type { Admin, Kafka, KafkaMessage } from "kafkajs";
import { Header, headersToRecord } from "./headers.ts";
import type { OutgoingMessage } from "./producer.ts";
import { kindOf, TOPIC_RECORDS } from "./records.ts";
import { deadLetterTopic, type TopicNames, type TopicSpec, topicNames } from "./topics.ts";

/** The header a replayed record carries: which dead letter it came from (`replayIdOf`). */
export const REPLAYED_FROM_HEADER = "dlq-replayed-from";

/**
 * Where replays are remembered. Kept as long as the dead letters (a week, topics.ts): a marker is
 * written after its dead letter, so it outlives it, and nothing can be replayed once both are gone.
 */
export const replayMarkerTopic = (prefix: string) => `${prefix}dlq.replays`;
export const replayMarkerSpec = (prefix: string): TopicSpec => ({
  name: replayMarkerTopic(prefix),
  partitions: 1,
  configs: { "retention.ms": String(7 * 24 * 3600 * 1000) },
});

/** A bad command line: the CLI prints it with its usage and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export type DlqCommand =
  | { command: "list"; topic?: string; since?: Date; json: boolean }
  | { command: "show"; topic: string; partition: number; offset: string; json: boolean }
  | { command: "replay"; topic?: string; since?: Date; dryRun: boolean; json: boolean }
  | { command: "help" };

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since`: an ISO 8601 time, or a duration back from `now` ("90m", "2h", "7d"). */
export function parseSince(value: string, now: Date): Date {
  const duration = DURATION.exec(value);
  if (duration?.[1] && duration[2])
    return new Date(now.getTime() - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS]);
  // Date.parse takes "2026", "12/7" and the like: only an ISO date, with a time or without, is meant.
  if (/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    const at = new Date(value);
    if (!Number.isNaN(at.getTime())) return at;
  }
  throw new UsageError(
    `--since: an ISO 8601 time (2026-12-07T09:30Z) or a duration (90m, 2h, 7d), not "${value}"`,
  );
}

/** The command line after `npm run dlq --`. */
export function parseDlqCommand(argv: string[], now = new Date()): DlqCommand {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        topic: { type: "string" },
        since: { type: "string" },
        "dry-run": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  }
  try {
    parsed = parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: "help" };
  const [command, ...rest] = positionals;
  const topic = values.topic;
  if (topic !== undefined && topic.trim() === "") throw new UsageError("--topic: a topic name");
  const since = values.since === undefined ? undefined : parseSince(values.since, now);
  const filters = { ...(topic !== undefined ? { topic } : {}), ...(since ? { since } : {}) };
  switch (command) {
    case "list":
      if (rest.length > 0) throw new UsageError(`list takes no arguments, not "${rest.join(" ")}"`);
      if (values["dry-run"]) throw new UsageError("--dry-run is for replay");
      return { command, ...filters, json: values.json };
    case "replay":
      if (rest.length > 0) throw new UsageError(`replay takes no arguments, not "${rest.join(" ")}"`);
      return { command, ...filters, dryRun: values["dry-run"], json: values.json };
    case "show": {
      const [dlqTopic, position, ...more] = rest;
      if (!dlqTopic || !position || more.length > 0)
        throw new UsageError("show: <topic> <partition>:<offset>, as list prints them");
      if (topic !== undefined || since !== undefined || values["dry-run"])
        throw new UsageError("show takes no --topic, --since or --dry-run");
      const match = /^(\d+):(\d+)$/.exec(position);
      if (!match?.[1] || !match[2])
        throw new UsageError(`show: <partition>:<offset>, e.g. 0:42, not "${position}"`);
      return { command, topic: dlqTopic, partition: Number(match[1]), offset: match[2], json: values.json };
    }
    case undefined:
      throw new UsageError("expected list, show or replay");
    default:
      throw new UsageError(`unknown command "${command}": expected list, show or replay`);
  }
}

/** One record of a `<topic>.dlq`, read. */
export interface DeadLetter {
  /** The dead-letter topic, its partition and offset: where this record is. */
  dlqTopic: string;
  partition: number;
  offset: string;
  /** When it was dead-lettered (the record's timestamp; `dlq-at` when the record has it). */
  at: Date;
  /** Where a consumer read it; a topic of "" when no consumer wrote it (ingress's unreadable webhook bodies). */
  source: { topic: string; partition: number; offset: string };
  reason: string;
  error: string;
  key: string;
  value: Buffer;
  /** Every header, the dlq-* ones included. */
  headers: Record<string, string>;
}

/** `<dlq topic>:<partition>:<offset>`: what names a dead letter for good (its marker's key). */
export const replayIdOf = (letter: Pick<DeadLetter, "dlqTopic" | "partition" | "offset">) =>
  `${letter.dlqTopic}:${letter.partition}:${letter.offset}`;

/** A fetched record of a dead-letter topic as a DeadLetter; a record written by hand may lack headers. */
export function readDeadLetter(dlqTopic: string, partition: number, message: KafkaMessage): DeadLetter {
  const headers = headersToRecord(message.headers);
  const written = headers[Header.dlqAt];
  const at = written ? new Date(written) : new Date(Number(message.timestamp));
  return {
    dlqTopic,
    partition,
    offset: message.offset,
    at: Number.isNaN(at.getTime()) ? new Date(Number(message.timestamp)) : at,
    source: {
      topic: headers[Header.dlqSourceTopic] ?? "",
      partition: Number(headers[Header.dlqSourcePartition] ?? -1),
      offset: headers[Header.dlqSourceOffset] ?? "",
    },
    reason: headers[Header.dlqReason] ?? "",
    error: headers[Header.dlqError] ?? "",
    key: message.key?.toString() ?? "",
    value: message.value ?? Buffer.alloc(0),
    headers,
  };
}

/** The dead-letter topics of a deployment, by the topics' keys in topicNames. */
export function deadLetterTopics(prefix: string): Record<keyof TopicNames, string> {
  return Object.fromEntries(
    Object.entries(topicNames(prefix)).map(([key, name]) => [key, deadLetterTopic(name)]),
  ) as Record<keyof TopicNames, string>;
}

/**
 * The dead-letter topics `--topic` names: a topic's key ("inbound"), its name ("taituri.inbound.v1")
 * or its dead-letter topic's name; without it, every one. Anything else is a usage error that lists
 * what there is.
 */
export function resolveTopics(prefix: string, topic: string | undefined): string[] {
  const all = deadLetterTopics(prefix);
  if (topic === undefined) return Object.values(all);
  const names = topicNames(prefix);
  for (const [key, dlq] of Object.entries(all) as [keyof TopicNames, string][])
    if (topic === key || topic === names[key] || topic === dlq) return [dlq];
  throw new UsageError(
    `--topic: no topic "${topic}" under prefix "${prefix}"; one of ${Object.keys(all).join(", ")} (or their full names)`,
  );
}

/** The dead letters at or after `since`, oldest first per topic. */
export function selectDeadLetters(letters: DeadLetter[], filter: { since?: Date | undefined }): DeadLetter[] {
  const since = filter.since?.getTime();
  return letters.filter((letter) => since === undefined || letter.at.getTime() >= since);
}

/**
 * Why a dead letter cannot go back to a topic, if it cannot: only what a consumer read from the
 * topic whose twin holds it is a record of that topic. Ingress keeps a signed webhook body it could
 * not read (JSON, no source) on `inbound.v1.dlq` for a person to read: the inbound topic carries
 * InboundEvents, and its consumer would only dead-letter the body again.
 */
export function notReplayable(letter: DeadLetter): string | undefined {
  if (!letter.source.topic)
    return `not a record a consumer read (no ${Header.dlqSourceTopic} header): ${redactIds(letter.reason) || "no reason given"}`;
  if (deadLetterTopic(letter.source.topic) !== letter.dlqTopic)
    return `its ${Header.dlqSourceTopic} ${letter.source.topic} is not the topic of ${letter.dlqTopic}`;
  return undefined;
}

/**
 * The record a dead letter was, to send again to its source topic: its key, value and headers
 * (trace context and content type among them) without the dead-letter ones, plus where it came from.
 */
export function replayMessageOf(letter: DeadLetter): OutgoingMessage {
  const headers = Object.fromEntries(
    Object.entries(letter.headers).filter(([name]) => !name.startsWith("dlq-")),
  );
  headers[REPLAYED_FROM_HEADER] = replayIdOf(letter);
  return { key: letter.key, value: letter.value, headers };
}

// A WhatsApp message id is base64 that holds the shopper's number (producer.ts names messages by
// its pseudonym for the same reason); outbound ids are made from inbound ones.
const WAMID = /wamid\.[A-Za-z0-9+/=_-]+/g;

/** redact(), and WhatsApp message ids as their pseudonyms too. */
export const redactIds = (text: string) => redact(text).replace(WAMID, (id) => pseudonym(id));

/** What list prints of one dead letter: nothing that names a shopper in plaintext. */
export function describeDeadLetter(letter: DeadLetter) {
  return {
    dlqTopic: letter.dlqTopic,
    position: `${letter.partition}:${letter.offset}`,
    at: letter.at.toISOString(),
    source: letter.source.topic
      ? `${letter.source.topic} ${letter.source.partition}:${letter.source.offset}`
      : "no consumer (not a record of the topic)",
    // The reason and error were redacted when written; again here, for records written by others.
    reason: redactIds(letter.reason),
    error: redactIds(letter.error),
    // Conversation ids carry the shopper's number or BSUID: their pseudonyms, as in a log line.
    key: redactIds(letter.key),
  };
}

export interface TopicSummary {
  dlqTopic: string;
  count: number;
  oldest?: string;
  newest?: string;
}

export function summarize(dlqTopic: string, letters: DeadLetter[]): TopicSummary {
  const times = letters.map((l) => l.at.getTime()).sort((a, b) => a - b);
  const first = times[0];
  const last = times[times.length - 1];
  return {
    dlqTopic,
    count: letters.length,
    ...(first !== undefined ? { oldest: new Date(first).toISOString() } : {}),
    ...(last !== undefined ? { newest: new Date(last).toISOString() } : {}),
  };
}

/** Every string of a decoded value through redactIds(): ids inside text, ids as fields. */
function redactDeep(value: unknown): unknown {
  if (typeof value === "string") return redactIds(value);
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)]));
  return value;
}

/**
 * A dead letter's value as its topic's record registry reads it (protobuf JSON, every string
 * redacted), or why it could not be read that way, which is often why it was dead-lettered.
 */
export function decodeDeadLetterValue(
  letter: DeadLetter,
  prefix: string,
): { messageType: string; value: unknown } | { undecodable: string; bytes: number } {
  const names = topicNames(prefix);
  const key = (Object.keys(names) as (keyof TopicNames)[]).find(
    (k) => deadLetterTopic(names[k]) === letter.dlqTopic,
  );
  if (!key)
    return {
      undecodable: `${letter.dlqTopic} is not a dead-letter topic of prefix "${prefix}"`,
      bytes: letter.value.length,
    };
  try {
    // A webhook body ingress could not read: JSON, shown as such.
    if (letter.headers[Header.type] === "application/json")
      return {
        messageType: "application/json",
        value: redactDeep(JSON.parse(letter.value.toString("utf8"))),
      };
    const kind = kindOf(TOPIC_RECORDS[key], { topic: names[key], headers: letter.headers });
    const codec = kind.codec as typeof kind.codec & { toJSON(message: unknown): unknown };
    return { messageType: kind.messageType, value: redactDeep(codec.toJSON(codec.decode(letter.value))) };
  } catch (error) {
    return { undecodable: redactIds((error as Error).message), bytes: letter.value.length };
  }
}

/** A dead letter as `show` prints it: headers and value, shopper ids as pseudonyms. */
export function showDeadLetter(letter: DeadLetter, prefix: string) {
  return {
    ...describeDeadLetter(letter),
    headers: Object.fromEntries(Object.entries(letter.headers).map(([k, v]) => [k, redactIds(v)])),
    value: decodeDeadLetterValue(letter, prefix),
  };
}

/**
 * Every record of `topic` up to its end as it is now, in offset order per partition, through a
 * throw-away consumer group that commits nothing and is deleted afterwards. `only` narrows it to
 * one record (show).
 */
export async function readTopic(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  options: { groupPrefix: string; only?: { partition: number; offset: string } },
): Promise<{ partition: number; message: KafkaMessage }[]> {
  const ends = await admin.fetchTopicOffsets(topic);
  const wanted = new Map<number, { from: bigint; to: bigint }>();
  for (const { partition, low, high } of ends) {
    if (options.only && options.only.partition !== partition) continue;
    const from = options.only ? BigInt(options.only.offset) : BigInt(low);
    const to = options.only ? BigInt(options.only.offset) + 1n : BigInt(high);
    if (from >= BigInt(low) && from < to && to <= BigInt(high)) wanted.set(partition, { from, to });
  }
  if (wanted.size === 0) return [];
  const groupId = `${options.groupPrefix}dlq-cli-${process.pid}-${Date.now()}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, retry: { retries: 3 } });
  const records: { partition: number; message: KafkaMessage }[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const remaining = new Set(wanted.keys());
      consumer.on(consumer.events.CRASH, (event) => reject(event.payload.error));
      consumer.on(consumer.events.GROUP_JOIN, () => {
        for (const [partition, { from }] of wanted) consumer.seek({ topic, partition, offset: String(from) });
      });
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const range = wanted.get(batch.partition);
            if (!range || !remaining.has(batch.partition)) return;
            for (const message of batch.messages) {
              const offset = BigInt(message.offset);
              if (offset >= range.from && offset < range.to)
                records.push({ partition: batch.partition, message });
            }
            // The end is the high watermark as it was at the start; a transaction marker or a
            // compacted record may have no message of its own, so the batch's last offset counts.
            if (BigInt(batch.lastOffset()) + 1n >= range.to) {
              remaining.delete(batch.partition);
              if (remaining.size === 0) resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
  }
  return records.sort(
    (a, b) => a.partition - b.partition || Number(BigInt(a.message.offset) - BigInt(b.message.offset)),
  );
}

/**
 * Dead letters (docs/operations.md, "DeadLetterQueueGrowing"):
 *   npm run dlq -- list [--topic T] [--since ISO|duration] [--json]
 *   npm run dlq -- show <dlq topic> <partition>:<offset> [--json]
 *   npm run dlq -- replay [--topic T] [--since ISO|duration] [--dry-run] [--json]
 * Only the broker's super user may read `*.dlq` (packages/kafka/data/access.json lets no service),
 * so this logs in as an operator: KAFKA_SASL_* / KAFKA_SSL* as the services have them, or, beside a
 * local secured broker, the super user TAITURI_KAFKA_AUTH derives. The logic is in
 * packages/kafka/src/dlq.ts.
 */
import { baseSchema, exitOnConfigError, loadConfig } from "@taituri/config";
import { localSuperUser } from "@taituri/devenv";
import { createKafka, EventProducer, ensureTopics } from "@taituri/kafka";
import {
  type DeadLetter,
  type DlqCommand,
  describeDeadLetter,
  notReplayable,
  parseDlqCommand,
  REPLAYED_FROM_HEADER,
  readDeadLetter,
  readTopic,
  replayIdOf,
  replayMarkerSpec,
  replayMarkerTopic,
  replayMessageOf,
  resolveTopics,
  selectDeadLetters,
  showDeadLetter,
  summarize,
  UsageError,
} from "@taituri/kafka/dlq";
import { configurePseudonyms, createLogger } from "@taituri/logging";

const usage = `Usage: npm run dlq -- list|show|replay [options]

  list                              per dead-letter topic: count, oldest, newest; each dead letter's
                                    time, position, source topic/partition/offset, reason, error and
                                    key (shopper ids as pseudonyms)
  show <dlq topic> <partition>:<offset>
                                    one dead letter: its headers, and its value decoded as its topic's
                                    record (shopper ids as pseudonyms)
  replay                            publishes each selected dead letter to its source topic: key, value
                                    and headers as they were, without the dlq-* ones, plus
                                    ${REPLAYED_FROM_HEADER}; one already replayed is not sent again

  --topic <t>          one topic: inbound, outbound, generationRequests, … or a full topic name
  --since <when>       dead-lettered at or after: an ISO 8601 time, or a duration back (90m, 2h, 7d)
  --dry-run            replay: say what would be sent, send nothing
  --json               machine-readable output

Settings: KAFKA_BROKERS, KAFKA_TOPIC_PREFIX, KAFKA_SASL_*, KAFKA_SSL* (a principal that may read the
*.dlq topics: the brokers' super user), PSEUDONYM_KEY (the services' key, so pseudonyms match the
logs). Beside \`npm start\` or \`node scripts/infra.ts up\`, TAITURI_KAFKA_AUTH logs in as the local
broker's super user.

Exit codes: 0 done, 1 other error, 2 bad usage, 3 Kafka refused or unreachable, 4 no such dead letter,
78 bad settings.`;

let command: DlqCommand;
try {
  command = parseDlqCommand(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`${error.message}\n\n${usage}\n`);
  process.exit(2);
}
if (command.command === "help") {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const config = exitOnConfigError(() => loadConfig(baseSchema));
configurePseudonyms(config.PSEUDONYM_KEY);
const prefix = config.KAFKA_TOPIC_PREFIX;
let topics: string[];
try {
  topics = resolveTopics(prefix, command.topic);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n\n${usage}\n`);
  process.exit(2);
}

// The operator's own settings win; without any, a local run's super user, and only locally: a
// deployment's brokers are reached with the settings given for them or not at all.
const superUser =
  config.KAFKA_SASL_MECHANISM === undefined && config.DEPLOYMENT_ENVIRONMENT === "local"
    ? localSuperUser(process.env.TAITURI_KAFKA_AUTH, config.KAFKA_BROKERS)
    : undefined;
const kafka = createKafka({
  brokers: config.KAFKA_BROKERS,
  clientId: "dlq-cli",
  logger: createLogger({ service: "dlq", level: "silent" }),
  security: config,
  ...(superUser ? { sasl: superUser } : {}),
});
const admin = kafka.admin();

/** Kafka's refusals and unreachable brokers are exit 3; they surface as kafkajs errors. */
class KafkaFailure extends Error {}
class NotFound extends Error {}

async function kafkaCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new KafkaFailure(`${what}: ${message}`, { cause: error });
  }
}

async function deadLettersOf(topic: string): Promise<DeadLetter[]> {
  const existing = new Set(await kafkaCall("listing topics", () => admin.listTopics()));
  // Created with their source topics by the services: one that is missing never had a dead letter.
  if (!existing.has(topic)) return [];
  const records = await kafkaCall(`reading ${topic}`, () =>
    readTopic(kafka, admin, topic, { groupPrefix: prefix }),
  );
  return records.map(({ partition, message }) => readDeadLetter(topic, partition, message));
}

/** Replay ids already sent, with when (the markers' values). */
async function replayed(): Promise<Map<string, string>> {
  const topic = replayMarkerTopic(prefix);
  const existing = new Set(await kafkaCall("listing topics", () => admin.listTopics()));
  const done = new Map<string, string>();
  if (!existing.has(topic)) return done;
  const records = await kafkaCall(`reading ${topic}`, () =>
    readTopic(kafka, admin, topic, { groupPrefix: prefix }),
  );
  for (const { message } of records) {
    const id = message.key?.toString();
    if (id) done.set(id, new Date(Number(message.timestamp)).toISOString());
  }
  return done;
}

async function list(selection: { since?: Date }, json: boolean): Promise<void> {
  const report = [];
  for (const topic of topics) {
    const letters = selectDeadLetters(await deadLettersOf(topic), selection);
    report.push({ ...summarize(topic, letters), deadLetters: letters.map(describeDeadLetter) });
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const lines: string[] = [];
  for (const topic of report) {
    if (topic.count === 0) {
      lines.push(`${topic.dlqTopic}: none`);
      continue;
    }
    lines.push(`${topic.dlqTopic}: ${topic.count}, oldest ${topic.oldest}, newest ${topic.newest}`);
    for (const letter of topic.deadLetters)
      lines.push(
        `  ${letter.position}  ${letter.at}  from ${letter.source}  key ${letter.key || "-"}`,
        `    reason: ${letter.reason || "-"}`,
        `    error:  ${letter.error || "-"}`,
      );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function show(partition: number, offset: string, json: boolean): Promise<void> {
  // resolveTopics gave the one dead-letter topic named.
  const topic = topics[0] as string;
  const exists = (await kafkaCall("listing topics", () => admin.listTopics())).includes(topic);
  if (!exists) throw new NotFound(`no topic ${topic}`);
  const records = await kafkaCall(`reading ${topic}`, () =>
    readTopic(kafka, admin, topic, { groupPrefix: prefix, only: { partition, offset } }),
  );
  const record = records[0];
  if (!record)
    throw new NotFound(
      `no dead letter at ${topic} ${partition}:${offset} (gone with retention, or never written)`,
    );
  const shown = showDeadLetter(readDeadLetter(topic, record.partition, record.message), prefix);
  if (json) {
    process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
    return;
  }
  const width = Math.max(...Object.keys(shown.headers).map((name) => name.length));
  process.stdout.write(
    `${[
      `${shown.dlqTopic} ${shown.position}, dead-lettered ${shown.at}`,
      `from ${shown.source}, key ${shown.key || "-"}`,
      "headers:",
      ...Object.entries(shown.headers).map(([name, value]) => `  ${name.padEnd(width)}  ${value}`),
      "value:",
      "messageType" in shown.value
        ? `  ${shown.value.messageType}\n${JSON.stringify(shown.value.value, null, 2).replace(/^/gm, "  ")}`
        : `  ${shown.value.bytes} bytes, not readable as its topic's record: ${shown.value.undecodable}`,
    ].join("\n")}\n`,
  );
}

async function replay(selection: { since?: Date }, dryRun: boolean, json: boolean): Promise<void> {
  const done = await replayed();
  const sent: { id: string; to: string; key: string }[] = [];
  const skipped: { id: string; replayedAt: string }[] = [];
  const refused: { id: string; why: string }[] = [];
  const producer = dryRun ? undefined : new EventProducer(kafka);
  try {
    if (producer) {
      await kafkaCall("creating the replay markers' topic", () =>
        ensureTopics(admin, [replayMarkerSpec(prefix)]),
      );
      await kafkaCall("connecting the producer", () => producer.connect());
    }
    for (const topic of topics) {
      for (const letter of selectDeadLetters(await deadLettersOf(topic), selection)) {
        const id = replayIdOf(letter);
        const why = notReplayable(letter);
        if (why !== undefined) {
          refused.push({ id, why });
          continue;
        }
        const at = done.get(id);
        if (at !== undefined) {
          skipped.push({ id, replayedAt: at });
          continue;
        }
        if (producer) {
          // One at a time, in the dead letters' order, each marked once its record is durable: an
          // interruption leaves at most one record sent and unmarked, which its consumer dedupes.
          await kafkaCall(`publishing ${id} to ${letter.source.topic}`, () =>
            producer.send(letter.source.topic, [replayMessageOf(letter)]),
          );
          await kafkaCall(`marking ${id} replayed`, () =>
            producer.send(replayMarkerTopic(prefix), [
              {
                key: id,
                value: Buffer.from(JSON.stringify({ to: letter.source.topic, at: new Date().toISOString() })),
                headers: {},
              },
            ]),
          );
        }
        sent.push({ id, to: letter.source.topic, key: describeDeadLetter(letter).key });
      }
    }
  } finally {
    await producer?.disconnect().catch(() => {});
  }
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ dryRun, replayed: sent, alreadyReplayed: skipped, notReplayable: refused }, null, 2)}\n`,
    );
    return;
  }
  const verb = dryRun ? "Would replay (dry run, nothing sent)" : "Replayed";
  const lines = [`${verb}: ${sent.length}`];
  for (const one of sent) lines.push(`  ${one.id} -> ${one.to}  key ${one.key || "-"}`);
  lines.push(`Already replayed, not sent again: ${skipped.length}`);
  for (const one of skipped) lines.push(`  ${one.id}  (replayed ${one.replayedAt})`);
  if (refused.length > 0) lines.push(`Not replayable, left where they are: ${refused.length}`);
  for (const one of refused) lines.push(`  ${one.id}  ${one.why}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function main(): Promise<void> {
  await kafkaCall(`connecting to ${config.KAFKA_BROKERS.join(",")}`, () => admin.connect());
  if (command.command === "list") await list(command.since ? { since: command.since } : {}, command.json);
  else if (command.command === "show") await show(command.partition, command.offset, command.json);
  else if (command.command === "replay")
    await replay(command.since ? { since: command.since } : {}, command.dryRun, command.json);
}

try {
  await main();
} catch (error) {
  if (error instanceof KafkaFailure) {
    process.stderr.write(`Kafka refused or could not be reached: ${error.message}\n`);
    process.exitCode = 3;
  } else if (error instanceof NotFound) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 4;
  } else {
    process.stderr.write(`dlq failed: ${error instanceof Error ? error.message : error}\n`);
    process.exitCode = 1;
  }
} finally {
  await admin.disconnect().catch(() => {});
}

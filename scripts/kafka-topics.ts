/**
 * Creates the deployment's Kafka topics (and their dead-letter twins) where they are missing, with
 * the partitions and retention the services would create them with; those that exist are left as
 * they are. The services do the same at start-up; this is for a platform that creates topics
 * before them (the Helm chart's pre-install/pre-upgrade Job) or a broker where services may not.
 *   npm run kafka-topics [-- --prefix <p>] [--partitions <n>] [--replication-factor <n>]
 * Logs in with this process's Kafka settings (KAFKA_BROKERS, KAFKA_SASL_*, KAFKA_SSL*): a
 * principal allowed to create topics. Exit codes: 0 done, 2 bad usage, 3 Kafka refused or
 * unreachable, 78 bad configuration.
 */
import { parseArgs } from "node:util";
import { baseSchema, exitOnConfigError, loadConfig } from "@taituri/config";
import { createKafka, ensureTopics, topicNames, topicSpecs } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";

const usage = `Usage: npm run kafka-topics -- [--prefix <p>] [--partitions <n>] [--replication-factor <n>]

  --prefix <p>                KAFKA_TOPIC_PREFIX of the deployment (default: the setting)
  --partitions <n>            partitions of each topic (default: KAFKA_PARTITIONS)
  --replication-factor <n>    replicas of each partition (default: the broker's default.replication.factor)`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${usage}\n`);
  process.exit(2);
}

let values: { prefix?: string; partitions?: string; "replication-factor"?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      prefix: { type: "string" },
      partitions: { type: "string" },
      "replication-factor": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const whole = (name: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) fail(`--${name}: a whole number of at least 1, not ${value}`);
  return n;
};

const config = exitOnConfigError(() => loadConfig(baseSchema));
const prefix = values.prefix ?? config.KAFKA_TOPIC_PREFIX;
const partitions = whole("partitions", values.partitions) ?? config.KAFKA_PARTITIONS;
const replication = whole("replication-factor", values["replication-factor"]) ?? -1;

const kafka = createKafka({
  brokers: config.KAFKA_BROKERS,
  clientId: "kafka-topics-cli",
  logger: createLogger({ service: "kafka-topics", level: "silent" }),
  security: config,
});
const admin = kafka.admin();
try {
  await admin.connect();
  const specs = topicSpecs(topicNames(prefix), partitions);
  const created = await ensureTopics(admin, specs, replication);
  process.stdout.write(
    `${specs.length} topics for prefix "${prefix}" on ${config.KAFKA_BROKERS.join(",")}: ${
      created.length === 0 ? "all there already" : `created ${created.join(", ")}`
    }\n`,
  );
} catch (error) {
  process.stderr.write(`Kafka refused or could not be reached: ${(error as Error).message}\n`);
  process.exitCode = 3;
} finally {
  await admin.disconnect().catch(() => {});
}

/**
 * Erases one shopper's data (docs/security.md, "Retention and erasure"):
 *   npm run erase -- <wa_id or BSUID> [--phone-number-id <id>] [--dry-run] [--json]
 * Each service erases what it owns with its own adapter's `eraseShopper`; this script only composes
 * them, in an order that a rerun can finish: the conversation, through which the others are found,
 * goes last. It prints counts per collection, bucket and key pattern, and no id but the one typed,
 * and which conversation replicas confirmed they dropped what they kept in memory.
 */
import { parseArgs } from "node:util";
import { baseSchema, exitOnConfigError, loadConfig } from "@taituri/config";
import {
  eraseConversations,
  FORGET_TIMEOUT_MS,
  type ForgetReport,
  findShopper,
} from "@taituri/conversation-service/store";
import { eraseShopper as eraseGeneration } from "@taituri/generation-service/store";
import { eraseShopper as eraseIngress } from "@taituri/ingress-service/store";
import { schema as limiterSchema } from "@taituri/limiter-service/config";
import { redisSecurity } from "@taituri/limiter-service/redis-connection";
import { eraseShopper as eraseLimiter } from "@taituri/limiter-service/store";
import { connectMongo, type MongoHandle } from "@taituri/mongo";
import { eraseShopper as erasePayment } from "@taituri/payment-service/store";
import { Cluster, Redis } from "ioredis";

const usage = `Usage: npm run erase -- <wa_id or BSUID> [--phone-number-id <id>] [--dry-run] [--json]

  Removes the shopper's conversations (every version, every id that leads to them: a phone number
  and a BSUID, before and after a number change), designs and rounds, messages and statuses, orders
  and their deliveries to the shop, and limiter keys. A paid order stays as a tombstone: its number,
  amounts, state and dates, for the shop's accounts, without conversation, recipient or address.
  Then waits (up to ${FORGET_TIMEOUT_MS / 1000} s) for every running conversation replica to drop the
  conversations it keeps in memory, and warns naming any that did not: restart those and run the
  erase again.

  --phone-number-id <id>   only under this business number (default: under every one)
  --dry-run                count what would go, change nothing
  --json                   the counts as JSON

Settings: MONGO_URL, MONGO_DB, REDIS_URL, LIMITER_KEY_PREFIX, LIMITER_REDIS_CLUSTER_NODES and
KAFKA_TOPIC_PREFIX, as the services have them; the defaults are the servers \`npm start\` runs.

Exit codes: 0 done (or nothing to erase; also with the warning about replicas), 1 other error, 2 bad usage, 5 MongoDB unreachable.`;

const config = exitOnConfigError(() =>
  loadConfig(
    baseSchema
      .pick({
        MONGO_URL: true,
        MONGO_DB: true,
        REDIS_URL: true,
        REDIS_USERNAME: true,
        REDIS_PASSWORD: true,
        REDIS_PASSWORD_FILE: true,
        REDIS_TLS: true,
        REDIS_TLS_CA_FILE: true,
        KAFKA_TOPIC_PREFIX: true,
      })
      .extend({
        LIMITER_KEY_PREFIX: limiterSchema.shape.LIMITER_KEY_PREFIX,
        LIMITER_REDIS_CLUSTER_NODES: limiterSchema.shape.LIMITER_REDIS_CLUSTER_NODES,
      }),
  ),
);

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      "phone-number-id": { type: "string" },
      "dry-run": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
}
try {
  args = parse();
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n\n${usage}\n`);
  process.exit(2);
}
if (args.values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
if (args.positionals.length !== 1 || !args.positionals[0]?.replace(/^\+/, "")) {
  process.stderr.write(`expected one wa_id or BSUID\n\n${usage}\n`);
  process.exit(2);
}
// Meta's wa_id has no "+", though people type one.
const shopper = args.positionals[0].replace(/^\+/, "");
const phoneNumberId = args.values["phone-number-id"];
const dryRun = args.values["dry-run"];

let mongo: MongoHandle;
try {
  mongo = await connectMongo({ url: config.MONGO_URL, dbName: config.MONGO_DB, appName: "erase" });
} catch (error) {
  process.stderr.write(`MongoDB unreachable: ${(error as Error).message}\n`);
  process.exit(5);
}
const nodes = config.LIMITER_REDIS_CLUSTER_NODES.map((node) => {
  const colon = node.lastIndexOf(":");
  return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
});
// The limiter's own credentials and TLS (REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS…).
const security = redisSecurity(config);
const redis =
  nodes.length > 0
    ? new Cluster(nodes, { redisOptions: security })
    : new Redis(config.REDIS_URL, { ...security, maxRetriesPerRequest: 1 });

try {
  const db = mongo.db;
  const records = await findShopper(db, shopper, phoneNumberId);
  // The conversation ids the shopper's ids make under the number given: what the other services
  // still hold of a conversation whose own documents an earlier, interrupted run already erased.
  const conversationIds = [
    ...new Set([
      ...records.conversationIds,
      ...(phoneNumberId ? records.shopperIds.map((id) => `${phoneNumberId}:${id}`) : []),
    ]),
  ];
  const removed: Record<string, number> = {
    ...(await eraseGeneration(db, conversationIds, dryRun)),
    ...(await eraseIngress(db, conversationIds, dryRun)),
  };
  const payment = await erasePayment(db, conversationIds, dryRun, new Date());
  Object.assign(removed, payment.counts);
  Object.assign(
    removed,
    await eraseLimiter(
      redis,
      config.LIMITER_KEY_PREFIX,
      { shopperIds: records.shopperIds, conversationIds },
      dryRun,
    ),
  );
  const conversations = await eraseConversations(db, records, dryRun);
  Object.assign(removed, conversations.counts);
  // A kept order is counted under payment_orders but not removed.
  const total = Object.values(removed).reduce((sum, n) => sum + n, 0);
  const report = {
    shopper,
    ...(phoneNumberId ? { phoneNumberId } : {}),
    dryRun,
    conversations: records.conversationIds.length,
    // Counted, never shown: the ids beyond the one typed are personal data.
    shopperIds: records.shopperIds.length,
    removed,
    keptOrders: payment.kept,
    total,
    // Replica ids (host, process), no personal data; absent on a dry run.
    ...(conversations.replicas ? { replicas: conversations.replicas } : {}),
    kafka: `events on the ${config.KAFKA_TOPIC_PREFIX}* topics stay until the topics' retention drops them`,
  };
  if (args.values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(text(report));
  // The warning goes to stderr too, so that --json output read by a program still shows it to a person.
  const warning = unconfirmed(report.replicas);
  if (warning && args.values.json) process.stderr.write(`${warning}\n`);
} catch (error) {
  process.stderr.write(`erase failed: ${error instanceof Error ? error.message : error}\n`);
  process.exitCode = 1;
} finally {
  await mongo.close();
  redis.disconnect();
}

function text(report: {
  dryRun: boolean;
  conversations: number;
  shopperIds: number;
  removed: Record<string, number>;
  keptOrders: { number: string; state: string }[];
  total: number;
  kafka: string;
  replicas?: ForgetReport;
}): string {
  const who = `${shopper}${phoneNumberId ? ` under ${phoneNumberId}` : ""}`;
  const warning = unconfirmed(report.replicas);
  if (report.total === 0)
    return `Nothing to erase: no data of ${who} was found${report.dryRun ? " (dry run)" : ""}.\n${warning ? `${warning}\n` : ""}`;
  const verb = report.dryRun ? "Would remove (dry run, nothing changed)" : "Removed";
  const width = Math.max(...Object.keys(report.removed).map((name) => name.length));
  const lines = [
    `${who}: ${report.conversations} conversation(s), ${report.shopperIds} id(s) (phone numbers, BSUIDs)`,
    `${verb}:`,
    ...Object.entries(report.removed).map(([name, n]) => `  ${name.padEnd(width)}  ${n}`),
  ];
  if (report.keptOrders.length > 0)
    lines.push(
      `${report.dryRun ? "Would keep" : "Kept"} ${report.keptOrders.length} paid order(s) as a tombstone (counted above):` +
        " number, amounts, state and dates, for the shop's accounts; conversation, recipient, address," +
        " design and checkout session erased",
      ...report.keptOrders.map((order) => `  ${order.number}  ${order.state}`),
    );
  if (report.replicas) lines.push(confirmed(report.replicas));
  if (warning) lines.push(warning);
  lines.push(`Not erased: ${report.kafka} (docs/security.md).`);
  return `${lines.join("\n")}\n`;
}

function confirmed(replicas: ForgetReport): string {
  const n = replicas.confirmed.length;
  if (n === 0 && replicas.unconfirmed.length === 0)
    return "Conversation replicas: none running, none keeps the shopper's conversations in memory.";
  return `Conversation replicas: ${n} confirmed they dropped the conversations they kept in memory${n > 0 ? ` (${replicas.confirmed.join(", ")})` : ""}.`;
}

/** The warning line for replicas that did not confirm, if any. */
function unconfirmed(replicas: ForgetReport | undefined): string | undefined {
  if (!replicas || replicas.unconfirmed.length === 0) return undefined;
  return (
    `Warning: ${replicas.unconfirmed.length} conversation replica(s) did not confirm within ${FORGET_TIMEOUT_MS / 1000} s that they` +
    ` dropped the conversations they keep in memory, and may write the erased journey back: ${replicas.unconfirmed.join(", ")}.` +
    " Restart them, then run the erase again (docs/security.md)."
  );
}

/**
 * Erases one shopper's data (docs/security.md, "Retention and erasure"):
 *   npm run erase -- <wa_id or BSUID> [--phone-number-id <id>] [--dry-run] [--json]
 * Each service erases what it owns with its own adapter's `eraseShopper`; this script only composes
 * them, in an order that a rerun can finish: the conversation, through which the others are found,
 * goes last. It prints counts per collection, bucket and key pattern, and no id but the one typed.
 */
import { parseArgs } from "node:util";
import { baseSchema, exitOnConfigError, loadConfig } from "@taituri/config";
import { eraseConversations, findShopper } from "@taituri/conversation-service/store";
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

  --phone-number-id <id>   only under this business number (default: under every one)
  --dry-run                count what would go, change nothing
  --json                   the counts as JSON

Settings: MONGO_URL, MONGO_DB, REDIS_URL, LIMITER_KEY_PREFIX, LIMITER_REDIS_CLUSTER_NODES and
KAFKA_TOPIC_PREFIX, as the services have them; the defaults are the servers \`npm start\` runs.

Exit codes: 0 done (or nothing to erase), 1 other error, 2 bad usage, 5 MongoDB unreachable.`;

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
  Object.assign(removed, await eraseConversations(db, records, dryRun));
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
    kafka: `events on the ${config.KAFKA_TOPIC_PREFIX}* topics stay until the topics' retention drops them`,
  };
  if (args.values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(text(report));
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
}): string {
  const who = `${shopper}${phoneNumberId ? ` under ${phoneNumberId}` : ""}`;
  if (report.total === 0)
    return `Nothing to erase: no data of ${who} was found${report.dryRun ? " (dry run)" : ""}.\n`;
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
  lines.push(`Not erased: ${report.kafka} (docs/security.md).`);
  return `${lines.join("\n")}\n`;
}

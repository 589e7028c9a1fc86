/**
 * The Kafka ACLs a deployment needs (docs/security.md, "Kafka"): each service may touch only its
 * own topics and consumer groups, and only the conversation writes the paid requests.
 *   npm run kafka-acls -- print|apply [--prefix <p>] [--kubernetes <namespace>/<fullname>]
 *                                     [--principal <service>=<principal>]… [--format table|kafka-acls|json]
 * `apply` logs in with this process's Kafka settings (KAFKA_BROKERS, KAFKA_SASL_*, KAFKA_SSL*): a
 * principal allowed to create ACLs, e.g. the broker's super user. `npm start` and the tests apply
 * the same bindings to the local broker themselves.
 */
import { parseArgs } from "node:util";
import { baseSchema, exitOnConfigError, loadConfig } from "@taituri/config";
import { createKafka } from "@taituri/kafka";
import {
  aclCommand,
  applyKafkaAcls,
  KAFKA_SERVICES,
  type KafkaService,
  kafkaAcls,
  kubernetesPrincipals,
  loadAccessPolicy,
  localPrincipals,
} from "@taituri/kafka/access";
import { createLogger } from "@taituri/logging";
import kafkajs, { type AclEntry } from "kafkajs";

const usage = `Usage: npm run kafka-acls -- print|apply [options]

  print   the ACL bindings of packages/kafka/data/access.json for one deployment
  apply   create them on the brokers (those that exist are left as they are)

  --prefix <p>                       KAFKA_TOPIC_PREFIX of the deployment (default: the setting, "taituri.")
  --kubernetes <namespace>/<name>    principals of the Helm chart's pods: each component's service
                                     account, User:system:serviceaccount:<namespace>:<name>-<component>
  --principal <service>=<principal>  one service's principal (repeatable; wins over --kubernetes)
                                     default: User:<service>, the local issuer's clients
  --format table|kafka-acls|json     print's output (default table); kafka-acls: one kafka-acls.sh line each

apply logs in with KAFKA_BROKERS, KAFKA_SASL_* and KAFKA_SSL* (a principal allowed to create ACLs).
Exit codes: 0 done, 1 other error, 2 bad usage, 3 Kafka refused or unreachable.`;

function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      prefix: { type: "string" },
      kubernetes: { type: "string" },
      principal: { type: "string", multiple: true, default: [] },
      format: { type: "string", default: "table" },
      help: { type: "boolean", short: "h" },
    },
  });
}

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${usage}\n`);
  process.exit(2);
}

let args: ReturnType<typeof parse>;
try {
  args = parse();
} catch (error) {
  fail((error as Error).message);
}
if (args.values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const [command, ...rest] = args.positionals;
if ((command !== "print" && command !== "apply") || rest.length > 0) fail("expected print or apply");
const format = args.values.format;
if (format !== "table" && format !== "kafka-acls" && format !== "json")
  fail(`--format: table, kafka-acls or json, not ${format}`);

const config = exitOnConfigError(() => loadConfig(baseSchema));
const prefix = args.values.prefix ?? config.KAFKA_TOPIC_PREFIX;

let principals: Record<KafkaService, string> = localPrincipals();
if (args.values.kubernetes !== undefined) {
  const match = /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(args.values.kubernetes);
  if (!match?.[1] || !match[2]) fail("--kubernetes: <namespace>/<fullname>, both DNS labels");
  principals = kubernetesPrincipals(match[1], match[2]);
}
for (const given of args.values.principal) {
  const at = given.indexOf("=");
  const service = given.slice(0, at) as KafkaService;
  const principal = given.slice(at + 1);
  if (at < 0 || !KAFKA_SERVICES.includes(service))
    fail(`--principal: <service>=<principal>, service one of ${KAFKA_SERVICES.join(", ")}`);
  if (!/^User:\S+$/.test(principal)) fail(`--principal ${service}: a Kafka principal looks like User:<name>`);
  principals[service] = principal;
}

const entries = kafkaAcls(loadAccessPolicy(), { prefix, principals });

if (command === "print") {
  if (format === "json") process.stdout.write(`${JSON.stringify(entries.map(readable), null, 2)}\n`);
  else if (format === "kafka-acls") process.stdout.write(`${entries.map((e) => aclCommand(e)).join("\n")}\n`);
  else process.stdout.write(table(entries));
  process.exit(0);
}

const kafka = createKafka({
  brokers: config.KAFKA_BROKERS,
  clientId: "kafka-acls-cli",
  logger: createLogger({ service: "kafka-acls", level: "silent" }),
  security: config,
});
const admin = kafka.admin();
try {
  await admin.connect();
  await applyKafkaAcls(admin, entries);
  process.stdout.write(
    `${entries.length} ACL bindings for prefix "${prefix}" on ${config.KAFKA_BROKERS.join(",")}: in place\n`,
  );
} catch (error) {
  process.stderr.write(`Kafka refused or could not be reached: ${(error as Error).message}\n`);
  process.exitCode = 3;
} finally {
  await admin.disconnect().catch(() => {});
}

function readable(entry: AclEntry) {
  const { AclOperationTypes, AclResourceTypes } = kafkajs;
  const name = <T extends Record<string, string | number>>(names: T, value: number) =>
    Object.entries(names).find(([, v]) => v === value)?.[0] ?? String(value);
  return {
    principal: entry.principal,
    operation: name(AclOperationTypes, entry.operation),
    resourceType: name(AclResourceTypes, entry.resourceType),
    resourceName: entry.resourceName,
    patternType: "LITERAL",
  };
}

function table(list: AclEntry[]): string {
  const rows = list.map(readable);
  const byPrincipal = new Map<string, typeof rows>();
  for (const row of rows) byPrincipal.set(row.principal, [...(byPrincipal.get(row.principal) ?? []), row]);
  const lines: string[] = [];
  for (const [principal, own] of byPrincipal) {
    lines.push(principal);
    const reads = own.filter((r) => r.operation === "READ");
    const writes = own.filter((r) => r.operation === "WRITE");
    lines.push(`  writes  ${writes.map((r) => r.resourceName).join(", ")}`);
    lines.push(
      `  reads   ${reads.map((r) => `${r.resourceType === "GROUP" ? "group " : ""}${r.resourceName}`).join(", ")}`,
    );
    lines.push(`  and may describe and create each topic of the deployment`);
  }
  return `${lines.join("\n")}\n`;
}

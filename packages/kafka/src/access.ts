import { readFileSync } from "node:fs";
import kafkajs, { type AclEntry, type Admin } from "kafkajs";
import { z } from "zod";
import { deadLetterTopic, type TopicNames, topicNames } from "./topics.ts";

/** The services that use Kafka; the limiter does not. */
export const KAFKA_SERVICES = ["ingress", "conversation", "generation", "payment"] as const;
export type KafkaService = (typeof KAFKA_SERVICES)[number];

const topicKey = z.enum(Object.keys(topicNames("")) as [keyof TopicNames, ...(keyof TopicNames)[]]);
const serviceAccess = z
  .object({
    writes: z.array(topicKey),
    // consumer group (without the deployment's prefix) -> the topics it reads
    reads: z.record(z.string().regex(/^[a-z][a-z.-]*$/), z.array(topicKey).min(1)),
  })
  .strict();
const policySchema = z
  .object({
    $comment: z.string().optional(),
    ...Object.fromEntries(KAFKA_SERVICES.map((s) => [s, serviceAccess])),
  })
  .strict();

export type ServiceAccess = z.infer<typeof serviceAccess>;
export type AccessPolicy = Record<KafkaService, ServiceAccess>;

// kafkajs is CommonJS: its enums are there at run time only through the default export.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
type AclOperation = (typeof AclOperationTypes)[keyof typeof AclOperationTypes];
type AclResource = (typeof AclResourceTypes)[keyof typeof AclResourceTypes];

export const ACCESS_POLICY_FILE = new URL("../data/access.json", import.meta.url);

/** The policy of data/access.json, validated: unknown topics, services or fields stop the caller. */
export function loadAccessPolicy(file: URL | string = ACCESS_POLICY_FILE): AccessPolicy {
  const parsed = policySchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success)
    throw new Error(
      `${String(file)}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  return parsed.data as unknown as AccessPolicy;
}

export interface AclOptions {
  /** The deployment's KAFKA_TOPIC_PREFIX: topics and consumer groups both carry it. */
  prefix: string;
  /**
   * Each service's Kafka principal. Kafka names an OAUTHBEARER client `User:<sub>`: locally the
   * issuer's client id (`User:conversation`), in Kubernetes the service account
   * (`User:system:serviceaccount:<namespace>:<name>`).
   */
  principals: Record<KafkaService, string>;
}

/** `User:<service>` for every service: the principals of the local issuer's clients. */
export const localPrincipals = (): Record<KafkaService, string> =>
  Object.fromEntries(KAFKA_SERVICES.map((s) => [s, `User:${s}`])) as Record<KafkaService, string>;

/**
 * The principals of the Helm chart's pods: each component runs as its own service account
 * `<fullname>-<component>`, and Kafka names an OAUTHBEARER client by its token's `sub`.
 */
export const kubernetesPrincipals = (namespace: string, fullname: string): Record<KafkaService, string> =>
  Object.fromEntries(
    KAFKA_SERVICES.map((s) => [s, `User:system:serviceaccount:${namespace}:${fullname}-${s}`]),
  ) as Record<KafkaService, string>;

/**
 * The ACL bindings that give each service what the policy says and nothing more, all LITERAL (a
 * prefix pattern would also cover another deployment whose prefix starts with this one). Every
 * service may describe and create each topic of its deployment, because each one ensures them all
 * at start; reading a topic brings writing its dead letters. Idempotent on the broker: creating a
 * binding that exists changes nothing.
 */
export function kafkaAcls(policy: AccessPolicy, options: AclOptions): AclEntry[] {
  const names = topicNames(options.prefix);
  const allTopics = Object.values(names).flatMap((name) => [name, deadLetterTopic(name)]);
  const entries: AclEntry[] = [];
  const allow = (
    principal: string,
    resourceType: AclResource,
    resourceName: string,
    operation: AclOperation,
  ) =>
    entries.push({
      principal,
      host: "*",
      resourceType,
      resourceName,
      resourcePatternType: ResourcePatternTypes.LITERAL,
      operation,
      permissionType: AclPermissionTypes.ALLOW,
    });
  for (const service of KAFKA_SERVICES) {
    const principal = options.principals[service];
    const access = policy[service];
    for (const topic of allTopics) {
      allow(principal, AclResourceTypes.TOPIC, topic, AclOperationTypes.DESCRIBE);
      allow(principal, AclResourceTypes.TOPIC, topic, AclOperationTypes.CREATE);
    }
    const writes = new Set(access.writes.map((key) => names[key]));
    for (const [group, topics] of Object.entries(access.reads)) {
      allow(principal, AclResourceTypes.GROUP, `${options.prefix}${group}`, AclOperationTypes.READ);
      for (const key of topics) {
        allow(principal, AclResourceTypes.TOPIC, names[key], AclOperationTypes.READ);
        writes.add(deadLetterTopic(names[key]));
      }
    }
    for (const topic of writes) allow(principal, AclResourceTypes.TOPIC, topic, AclOperationTypes.WRITE);
  }
  return dedupe(entries);
}

function dedupe(entries: AclEntry[]): AclEntry[] {
  const seen = new Map<string, AclEntry>();
  for (const entry of entries)
    seen.set(`${entry.principal}|${entry.resourceType}|${entry.resourceName}|${entry.operation}`, entry);
  return [...seen.values()];
}

/** Creates the bindings (the broker ignores those it has) and returns how many were asked for. */
export async function applyKafkaAcls(admin: Admin, entries: AclEntry[]): Promise<number> {
  // One request per few hundred bindings keeps each well under the broker's request size.
  for (let i = 0; i < entries.length; i += 200) await admin.createAcls({ acl: entries.slice(i, i + 200) });
  return entries.length;
}

/** Who may write `topic` under `options`: the principals the bindings allow to, for docs and tests. */
export function writersOf(entries: AclEntry[], topic: string): string[] {
  return entries
    .filter(
      (e) =>
        e.resourceType === AclResourceTypes.TOPIC &&
        e.resourceName === topic &&
        e.operation === AclOperationTypes.WRITE,
    )
    .map((e) => e.principal)
    .sort();
}

const OPERATION_NAMES: Record<number, string> = {
  [AclOperationTypes.READ]: "Read",
  [AclOperationTypes.WRITE]: "Write",
  [AclOperationTypes.CREATE]: "Create",
  [AclOperationTypes.DESCRIBE]: "Describe",
};

/**
 * A binding as the `kafka-acls.sh` line that creates it, for platform teams who keep ACLs in their
 * own tooling. Principals and names are quoted for a POSIX shell.
 */
export function aclCommand(entry: AclEntry, bootstrap = "$KAFKA_BROKERS"): string {
  const operation = OPERATION_NAMES[entry.operation];
  if (!operation) throw new Error(`no kafka-acls.sh name for operation ${entry.operation}`);
  const resource =
    entry.resourceType === AclResourceTypes.TOPIC
      ? "--topic"
      : entry.resourceType === AclResourceTypes.GROUP
        ? "--group"
        : undefined;
  if (!resource) throw new Error(`no kafka-acls.sh flag for resource type ${entry.resourceType}`);
  const quote = (value: string) => `'${value.replaceAll("'", "'\\''")}'`;
  return [
    "kafka-acls.sh",
    `--bootstrap-server ${bootstrap}`,
    "--add",
    `--allow-principal ${quote(entry.principal)}`,
    `--operation ${operation}`,
    `${resource} ${quote(entry.resourceName)}`,
    "--resource-pattern-type literal",
  ].join(" ");
}

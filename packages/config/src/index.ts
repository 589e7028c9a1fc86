import { z } from "zod";
import { connectionProblems } from "./connections.ts";
import { developmentDefaultsInEffect, refuseOutsideLocal } from "./development-defaults.ts";

export { devClockUrl } from "./dev-clock.ts";
export {
  type DevelopmentRule,
  isLoopbackUrl,
  MIN_SECRET_BYTES,
  refuseOutsideLocal,
} from "./development-defaults.ts";
export {
  checkHttpListener,
  checkOpsPort,
  type HttpListenerConfig,
  httpListenerOptions,
  httpListenerSettings,
} from "./http.ts";
export { z };

/** Thrown at start-up when the environment does not satisfy a service's schema. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

/**
 * The problems the ConfigError of `load` lists, for tests that check a setting is refused: throws
 * when `load` succeeds or fails with anything else.
 */
export function configProblems(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError, and the configuration loaded");
}

/**
 * Parses the environment once against a service's schema. Every problem is reported at once, each
 * naming its variable, so a bad deployment fails at start-up with one readable message instead of at
 * the first request that touches the setting. Outside DEPLOYMENT_ENVIRONMENT=local a development
 * value in effect (refuseOutsideLocal) is one of those problems; so is an incomplete Kafka or Redis
 * credential, or a credential file that cannot be read (connectionProblems).
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: Env = process.env): z.infer<S> {
  // An empty string means "unset" for every variable: `FOO=` in a .env file should take the default.
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== "") cleaned[key] = value;
  }
  const result = schema.safeParse(cleaned);
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => {
        const name = issue.path.join(".") || "(environment)";
        if (issue.code === "invalid_type" && cleaned[name] === undefined) return `${name} is required`;
        return `${name}: ${issue.message}`;
      });
  if (result.success) problems.push(...connectionProblems(result.data));
  problems.push(...developmentDefaultsInEffect(schema, cleaned));
  if (result.success && problems.length === 0) return result.data;
  throw new ConfigError(problems);
}

/** A TCP port number. */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/** A comma-separated list, trimmed, empty entries dropped. */
export const csv = () =>
  z.string().transform((value) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  );

/** A positive integer with a default. */
export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** "true"/"false"/"1"/"0"/"yes"/"no" (z.coerce.boolean would read "false" as true). */
export const flag = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"])
    .default(fallback ? "true" : "false")
    .transform((value) => value === "true" || value === "1" || value === "yes");

export const logLevel = () =>
  z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info");

const DEV_PSEUDONYM_KEY = "taituri-dev-pseudonym-key";

/** The SASL mechanisms of KAFKA_SASL_MECHANISM (kafkajs's names). */
/**
 * How a service that verifies tokens reaches its issuer's keys, beside OIDC_ISSUER_URL: in
 * Kubernetes the API server's service-account issuer (`https://kubernetes.default.svc`) is served
 * with the cluster's CA and, under the default RBAC, only to an authenticated caller; managed
 * clusters (EKS, GKE, AKS) publish theirs publicly at another URL (docs/security.md).
 */
export const oidcVerifierFields = {
  // The issuer's JWKS, fetched directly instead of through discovery.
  OIDC_JWKS_URL: z.string().url().optional(),
  // PEM file of the CAs trusted for discovery and the JWKS (in a pod: the cluster CA,
  // /var/run/secrets/kubernetes.io/serviceaccount/ca.crt).
  OIDC_CA_FILE: z.string().min(1).optional(),
  // A token sent with those requests (in a pod: its own service-account token), read at each fetch.
  OIDC_DISCOVERY_TOKEN_FILE: z.string().min(1).optional(),
};

/** The verifier options those fields give (see @taituri/oidc createVerifier). */
export const oidcVerifierOptions = (config: {
  OIDC_JWKS_URL?: string | undefined;
  OIDC_CA_FILE?: string | undefined;
  OIDC_DISCOVERY_TOKEN_FILE?: string | undefined;
}) => ({
  ...(config.OIDC_JWKS_URL ? { jwksUrl: config.OIDC_JWKS_URL } : {}),
  ...(config.OIDC_CA_FILE ? { caFile: config.OIDC_CA_FILE } : {}),
  ...(config.OIDC_DISCOVERY_TOKEN_FILE ? { tokenFile: config.OIDC_DISCOVERY_TOKEN_FILE } : {}),
});

export const KAFKA_SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512", "oauthbearer"] as const;

/**
 * The settings every service shares: where the servers are and how to log. Services extend this
 * with their own fields.
 */
export const baseSchema = z.object({
  // Comma-separated host:port list of Kafka bootstrap brokers.
  KAFKA_BROKERS: csv().default(["127.0.0.1:19092"]),
  // MongoDB connection string; the database name comes from MONGO_DB.
  MONGO_URL: z.string().url().default("mongodb://127.0.0.1:27018/"),
  // One database holds every service's collections, each prefixed by its owner.
  MONGO_DB: z.string().default("taituri"),
  // Most connections (so operations in flight) one process opens to the database. FerretDB hands
  // each operation one of its PostgreSQL connections and stalls for good when they run out
  // (docs/infrastructure.md): keep the sum over the processes sharing one FerretDB under its pool.
  MONGO_POOL_SIZE: positiveInt(24),
  // Least time between two grouped inserts into one collection (GroupInserter), in ms: under load
  // each statement carries more documents, and FerretDB spends about as much CPU on a statement as
  // on its rows; the price is up to that long per insert on a message's path (bench/README.md has
  // the trade measured). 0: each insert goes as soon as the one before it returns.
  MONGO_INSERT_INTERVAL_MS: z.coerce.number().int().min(0).max(1000).default(10),
  // How long a consumer retries a message that fails for a transient or unclassified reason (a
  // database or broker away, a bug), counted from its first failure, before dead-lettering it (ms).
  // Its key waits meanwhile, so a shopper's order holds; a failover or restart takes well under it.
  CONSUMER_RETRY_MAX_MS: z.coerce.number().int().min(0).default(300_000),
  // Longest wait between two attempts at a message (backoff doubling from 200 ms, jittered): about
  // the longest a message waits after its dependency came back.
  CONSUMER_RETRY_BACKOFF_MAX_MS: z.coerce.number().int().positive().default(10_000),
  // Sends waiting for Kafka, at most (messages, bytes): past either, a send fails at once (ingress
  // answers the webhook 503, so Meta retries) rather than growing a queue while the broker is away.
  PRODUCER_MAX_QUEUED_MESSAGES: z.coerce.number().int().positive().default(20_000),
  PRODUCER_MAX_QUEUED_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(16 * 1024 * 1024),
  // Redis connection string. REDIS_USERNAME/REDIS_PASSWORD apply where it carries none.
  REDIS_URL: z.string().url().default("redis://127.0.0.1:16379"),
  // Redis ACL user (Redis 6+); unset: the `default` user.
  REDIS_USERNAME: z.string().optional(),
  // Redis password (requirepass, or the ACL user's), or a file holding it (a mounted secret).
  REDIS_PASSWORD: z.string().optional(),
  REDIS_PASSWORD_FILE: z.string().optional(),
  // Connect to Redis over TLS (as a rediss:// REDIS_URL does).
  REDIS_TLS: flag(false),
  // PEM file of the CA(s) that signed Redis's certificate; unset: Node's built-in CAs.
  REDIS_TLS_CA_FILE: z.string().optional(),
  // Prefix for every Kafka topic, so several deployments (or test runs) can share one cluster.
  KAFKA_TOPIC_PREFIX: z.string().default("taituri."),
  // Partitions of each topic when a service has to create it. Ordering is per conversation, so
  // this bounds how many consumers of one group can work in parallel; see docs/architecture.md.
  KAFKA_PARTITIONS: z.coerce.number().int().positive().default(6),
  // Connect to the brokers over TLS (every managed Kafka: MSK, Confluent Cloud, Aiven).
  KAFKA_SSL: flag(false),
  // PEM file of the CA(s) that signed the brokers' certificates; unset: Node's built-in CAs.
  KAFKA_SSL_CA_FILE: z.string().optional(),
  // PEM client certificate and its key, for mutual TLS (both or neither).
  KAFKA_SSL_CERT_FILE: z.string().optional(),
  KAFKA_SSL_KEY_FILE: z.string().optional(),
  // Check the brokers' certificates and names. Off, anyone on the path can read and forge the
  // traffic, credentials included: refused outside local.
  KAFKA_SSL_REJECT_UNAUTHORIZED: refuseOutsideLocal(flag(true), {
    values: ["false"],
    is: "certificate checks off",
    instead: "set KAFKA_SSL_CA_FILE to the CA of the brokers' certificates",
  }),
  // SASL mechanism the brokers' listener wants; unset: no SASL, so no ACL can tell the services
  // apart and whoever reaches the brokers can write the paid requests: refused outside local
  // unless KAFKA_ALLOW_UNAUTHENTICATED (docs/security.md, "Kafka: who may start paid work").
  KAFKA_SASL_MECHANISM: refuseOutsideLocal(z.enum(KAFKA_SASL_MECHANISMS).optional(), {
    unset: true,
    is: "no login to Kafka, so anyone who reaches the brokers can write the paid requests",
    instead:
      "set KAFKA_SASL_MECHANISM (oauthbearer with KAFKA_OAUTH_TOKEN_FILE in Kubernetes), or KAFKA_ALLOW_UNAUTHENTICATED=true if nothing else can reach the brokers",
    when: { KAFKA_ALLOW_UNAUTHENTICATED: "false" },
  }),
  // true: accept Kafka without a login outside local (brokers no one else can reach).
  KAFKA_ALLOW_UNAUTHENTICATED: flag(false),
  // User and password for plain and scram-*; the password or a file holding it (a mounted secret).
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().optional(),
  KAFKA_SASL_PASSWORD_FILE: z.string().optional(),
  // oauthbearer, first way: a token file kept fresh by the platform (a projected service-account
  // token), read again for each new connection.
  KAFKA_OAUTH_TOKEN_FILE: z.string().optional(),
  // oauthbearer, second way: an OIDC client-credentials grant at this token endpoint.
  KAFKA_OAUTH_TOKEN_URL: z.string().url().optional(),
  KAFKA_OAUTH_CLIENT_ID: z.string().optional(),
  // The client's secret, or a file holding it.
  KAFKA_OAUTH_CLIENT_SECRET: z.string().optional(),
  KAFKA_OAUTH_CLIENT_SECRET_FILE: z.string().optional(),
  // Audience the brokers expect in the token (required by the grant), and scopes to ask for.
  KAFKA_OAUTH_AUDIENCE: z.string().optional(),
  KAFKA_OAUTH_SCOPE: z.string().optional(),
  LOG_LEVEL: logLevel(),
  // json: one object a line, what log shippers parse (any deployment); pretty: one readable line
  // each, for a person at a terminal (npm start sets it). Pretty lines are redacted like JSON ones.
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
  // Value of the deployment.environment resource attribute and of the `env` log field. Anything but
  // `local` refuses every development default (docs/security.md).
  DEPLOYMENT_ENVIRONMENT: z.string().default("local"),
  // Key of the HMAC that turns phone numbers in logs and spans into pseudonyms (docs/operations.md).
  // The default is public, so pseudonyms made with it can be reversed by hashing every number:
  // outside local a secret of 32+ bytes is required, the same in all services so one shopper has
  // one pseudonym.
  PSEUDONYM_KEY: refuseOutsideLocal(z.string().min(16).default(DEV_PSEUDONYM_KEY), {
    secret: [DEV_PSEUDONYM_KEY],
  }),
});
export type BaseConfig = z.infer<typeof baseSchema>;

/** For main.ts: a bad configuration prints its problems and exits 78 (EX_CONFIG), with no stack trace. */
export function exitOnConfigError<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(78);
  }
}

import type { IssuerClient } from "@taituri/oidc";
import type { SASLOptions } from "kafkajs";

export type InfraMode = "env" | "docker" | "local";

export interface Infra {
  kafka: InfraKafka;
  /** `mongodb://host:port/` — pick the database with `client.db(name)`, do not append to the string. */
  mongo: { url: string };
  redis: { url: string };
  mode: InfraMode;
  /**
   * The local OIDC issuer Kafka trusts (local mode, or inherited through TAITURI_KAFKA_AUTH): the
   * services' clients are on it, so a journey's internal calls can use it too.
   */
  oidc?: { url: string; clientSecret(clientId: string): string };
  /** The variables that make startInfra() in a child process use these same servers. */
  env(): Record<string, string>;
  /** Stops only what this call started; safe to call more than once. */
  stop(): Promise<void>;
}

/**
 * The broker. A local one wants SASL/OAUTHBEARER from the services and decides with ACLs what each
 * may do (packages/kafka/data/access.json); one named by KAFKA_BROKERS alone is taken as it is.
 */
export interface InfraKafka {
  brokers: string[];
  /** True when clients must log in and ACLs decide. */
  secured: boolean;
  /**
   * kafkajs options of a client with full access (the broker's super user): for tests and tools
   * that create topics, look at them or play a missing service. Spread into `new Kafka({...})`.
   */
  client: { brokers: string[]; sasl?: SASLOptions };
  /** A service's Kafka settings: KAFKA_BROKERS and, on a secured broker, its OAUTHBEARER client. */
  settings(service: "ingress" | "conversation" | "generation" | "payment"): Record<string, string>;
  /** Grants each service its topics and groups under `prefix` (ACLs); nothing to do when not secured. */
  authorize(prefix: string): Promise<void>;
}

export type LogFn = (line: string) => void;

export interface StartInfraOptions {
  /** One line per step; defaults to stderr with an `[infra]` prefix. */
  log?: LogFn;
  /** Defaults to `$TAITURI_CACHE_DIR`, then `~/.cache/taituri`. */
  cacheDir?: string;
  /**
   * Local mode only: keep data in `<cache>/data/` across starts instead of a fresh
   * per-run folder. Only one process can use the persistent data at a time.
   */
  persist?: boolean;
  /** Overrides `$TAITURI_INFRA_MODE` (`auto` | `docker` | `local`); `auto` prefers Docker when reachable. */
  mode?: "auto" | "docker" | "local";
  /** Environment to read KAFKA_BROKERS / MONGO_URL / REDIS_URL and settings from; defaults to `process.env`. */
  env?: Record<string, string | undefined>;
  /** Per-server readiness timeout (default 120 s). */
  readyTimeoutMs?: number;
  /** Local mode: the port of the OIDC issuer Kafka trusts (default: any free one). */
  oidcPort?: number;
  /** Local mode: more clients of that issuer, beside the services' own (operators' CLIs). */
  oidcClients?: Record<string, string | IssuerClient>;
}

export type ServiceName = "kafka" | "mongo" | "redis";

/** A server this process started, in whatever way. */
export interface StartedService {
  name: ServiceName;
  /** Connection string handed out through Infra. */
  endpoint: string;
  stop(): Promise<void>;
}

export type InfraMode = "env" | "docker" | "local";

export interface Infra {
  kafka: { brokers: string[] };
  /** `mongodb://host:port/` — pick the database with `client.db(name)`, do not append to the string. */
  mongo: { url: string };
  redis: { url: string };
  mode: InfraMode;
  /** Stops only what this call started; safe to call more than once. */
  stop(): Promise<void>;
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
}

export type ServiceName = "kafka" | "mongo" | "redis";

/** A server this process started, in whatever way. */
export interface StartedService {
  name: ServiceName;
  /** Connection string handed out through Infra. */
  endpoint: string;
  stop(): Promise<void>;
}

import { mkdir } from "node:fs/promises";
import { applyKafkaAcls, kafkaAcls, loadAccessPolicy, localPrincipals } from "@taituri/kafka/access";
import { Kafka, logLevel, type SASLOptions } from "kafkajs";
import { resolveCacheDir } from "./cache.ts";
import {
  brokerOAuth,
  clientSecretOf,
  decodeKafkaAuth,
  encodeKafkaAuth,
  KAFKA_AUDIENCE,
  type LocalIdentity,
  type LocalKafkaAuth,
  startLocalIdentity,
} from "./identity.ts";
import { type KafkaInstall, provisionKafka, startLocalKafka, superUserSasl } from "./kafka.ts";
import { openLocalRun } from "./local.ts";
import { chooseMode } from "./mode.ts";
import { type MongoInstall, provisionMongo, startLocalMongo } from "./mongo.ts";
import { provisionRedis, type RedisInstall, startLocalRedis } from "./redis.ts";
import type { Infra, InfraMode, LogFn, ServiceName, StartedService, StartInfraOptions } from "./types.ts";
import { defaultLog, seconds, timed } from "./util.ts";

export { KAFKA_VERSION } from "./kafka.ts";
export { FERRETDB_VERSION } from "./mongo.ts";
export { DEFAULT_PORTS } from "./ports.ts";
export {
  type RestartableKafka,
  type RestartableKafkaOptions,
  startRestartableKafka,
} from "./restartable-kafka.ts";
export { type MongoOutage, type RestartableMongo, startRestartableMongo } from "./restartable-mongo.ts";
export type { Infra, InfraKafka, InfraMode, LogFn, StartInfraOptions } from "./types.ts";

const SERVICES: readonly ServiceName[] = ["kafka", "mongo", "redis"];
const ENV_VARS: Record<ServiceName, string> = {
  kafka: "KAFKA_BROKERS",
  mongo: "MONGO_URL",
  redis: "REDIS_URL",
};

/**
 * Gives tests and `npm start` a Kafka, a MongoDB-wire server and a Redis, in this order of preference:
 * servers named by KAFKA_BROKERS / MONGO_URL / REDIS_URL; containers when a Docker runtime is
 * reachable; otherwise local processes provisioned into the cache dir.
 */
export async function startInfra(opts: StartInfraOptions = {}): Promise<Infra> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const t0 = performance.now();

  const endpoints: Partial<Record<ServiceName, string>> = {};
  for (const s of SERVICES) {
    const value = env[ENV_VARS[s]]?.trim();
    if (value) {
      endpoints[s] = value;
      log(`${s}: using ${ENV_VARS[s]}=${value} from the environment`);
    }
  }
  const missing = SERVICES.filter((s) => !endpoints[s]);
  const inherited = endpoints.kafka
    ? decodeKafkaAuth(env.TAITURI_KAFKA_AUTH, brokerList(endpoints.kafka))
    : undefined;
  if (missing.length === 0) return makeInfra("env", endpoints, [], async () => {}, log, inherited);

  const chosen = await chooseMode(opts.mode ?? env.TAITURI_INFRA_MODE ?? "auto", log);
  const mode = chosen.mode;

  let started: StartedService[];
  let cleanup: () => Promise<void> = async () => {};
  let identity: LocalIdentity | undefined;
  if (chosen.mode === "docker") {
    const docker = await import("./docker.ts");
    started = await docker.startDockerServices({
      host: chosen.dockerHost,
      services: missing,
      log,
      readyTimeoutMs,
    });
  } else {
    // A local broker trusts a local issuer, started first: the broker fetches its keys at start.
    if (missing.includes("kafka"))
      identity = await startLocalIdentity({
        ...(opts.oidcPort !== undefined ? { port: opts.oidcPort } : {}),
        ...(opts.oidcClients ? { clients: opts.oidcClients } : {}),
      });
    try {
      ({ started, cleanup } = await startLocal(missing, {
        cacheDir: resolveCacheDir(opts.cacheDir, env),
        log,
        persist: opts.persist ?? false,
        readyTimeoutMs,
        ...(identity ? { identity } : {}),
      }));
    } catch (error) {
      await identity?.issuer.close();
      throw error;
    }
  }
  for (const s of started) endpoints[s.name] = s.endpoint;
  log(`infra ready in ${seconds(performance.now() - t0)} (${mode})`);
  const auth: LocalKafkaAuth | undefined = identity
    ? {
        brokers: brokerList(need(endpoints, "kafka")),
        issuerUrl: identity.issuer.url,
        secret: identity.secret,
      }
    : inherited;
  const stopIssuer = identity?.issuer;
  return makeInfra(
    mode,
    endpoints,
    started,
    async () => {
      await cleanup();
      await stopIssuer?.close();
    },
    log,
    auth,
  );
}

/**
 * The super user's login on the secured local broker TAITURI_KAFKA_AUTH describes, when it is about
 * `brokers`: for operator tools (`npm run dlq`) run beside `npm start` or `scripts/infra.ts up`.
 */
export function localSuperUser(value: string | undefined, brokers: string[]): SASLOptions | undefined {
  const auth = decodeKafkaAuth(value, brokers);
  return auth ? superUserSasl(brokerOAuth(auth)) : undefined;
}

const brokerList = (value: string) =>
  value
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);

function need(endpoints: Partial<Record<ServiceName, string>>, s: ServiceName): string {
  const v = endpoints[s];
  if (!v) throw new Error(`internal: no endpoint for ${s}`);
  return v;
}

function makeInfra(
  mode: InfraMode,
  endpoints: Partial<Record<ServiceName, string>>,
  started: StartedService[],
  cleanup: () => Promise<void>,
  log: LogFn,
  auth: LocalKafkaAuth | undefined,
): Infra {
  const brokers = brokerList(need(endpoints, "kafka"));
  const client = { brokers, ...(auth ? { sasl: superUserSasl(brokerOAuth(auth)) } : {}) };
  const authorized = new Map<string, Promise<void>>();
  let stopping: Promise<void> | undefined;
  return {
    kafka: {
      brokers,
      secured: auth !== undefined,
      client,
      settings: (service) => ({
        KAFKA_BROKERS: brokers.join(","),
        ...(auth
          ? {
              KAFKA_SASL_MECHANISM: "oauthbearer",
              KAFKA_OAUTH_TOKEN_URL: `${auth.issuerUrl}/token`,
              KAFKA_OAUTH_CLIENT_ID: service,
              KAFKA_OAUTH_CLIENT_SECRET: clientSecretOf(auth, service),
              KAFKA_OAUTH_AUDIENCE: KAFKA_AUDIENCE,
            }
          : {}),
      }),
      authorize: (prefix) => {
        if (!auth) return Promise.resolve();
        let done = authorized.get(prefix);
        if (!done) {
          done = grant(client, prefix);
          done.catch(() => authorized.delete(prefix));
          authorized.set(prefix, done);
        }
        return done;
      },
    },
    mongo: { url: need(endpoints, "mongo") },
    redis: { url: need(endpoints, "redis") },
    mode,
    ...(auth
      ? { oidc: { url: auth.issuerUrl, clientSecret: (id: string) => clientSecretOf(auth, id) } }
      : {}),
    env: () => ({
      KAFKA_BROKERS: brokers.join(","),
      MONGO_URL: need(endpoints, "mongo"),
      REDIS_URL: need(endpoints, "redis"),
      ...(auth ? { TAITURI_KAFKA_AUTH: encodeKafkaAuth(auth) } : {}),
    }),
    stop: () => {
      stopping ??= (async () => {
        if (started.length === 0) return await cleanup();
        const t0 = performance.now();
        const results = await Promise.allSettled(started.map((s) => s.stop()));
        await cleanup();
        log(`infra stopped in ${seconds(performance.now() - t0)}`);
        const failure = results.find((r) => r.status === "rejected");
        if (failure) throw failure.reason;
      })();
      return stopping;
    },
  };
}

/**
 * The ACLs of data/access.json for the services of one deployment (`prefix`), then a wait until the
 * broker's authorizer has them: they reach it through the metadata log, and a service started the
 * moment createAcls returns could otherwise be refused its first request.
 */
async function grant(client: { brokers: string[]; sasl?: SASLOptions }, prefix: string): Promise<void> {
  const admin = new Kafka({ clientId: "taituri-infra-acls", ...client, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const entries = kafkaAcls(loadAccessPolicy(), { prefix, principals: localPrincipals() });
    await applyKafkaAcls(admin, entries);
    const last = entries.at(-1);
    if (!last) return;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { resources } = await admin.describeAcls({
        resourceType: last.resourceType,
        resourceName: last.resourceName,
        resourcePatternType: last.resourcePatternType,
        principal: last.principal,
        host: last.host,
        operation: last.operation,
        permissionType: last.permissionType,
      });
      if (resources.length > 0) return;
      if (Date.now() > deadline) throw new Error(`Kafka ACLs for ${prefix} did not take effect within 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await admin.disconnect();
  }
}

interface Installs {
  kafka?: KafkaInstall;
  mongo?: MongoInstall;
  redis?: RedisInstall;
}

async function provision(services: readonly ServiceName[], cacheDir: string, log: LogFn): Promise<Installs> {
  await mkdir(cacheDir, { recursive: true });
  const ctx = { cacheDir, log };
  const installs: Installs = {};
  // In parallel: the Maven download, the Go build and apt-get mostly wait on different things.
  await Promise.all(
    services.map(async (s) => {
      if (s === "kafka") installs.kafka = await timed(log, "kafka: provisioning", () => provisionKafka(ctx));
      if (s === "mongo") installs.mongo = await timed(log, "mongo: provisioning", () => provisionMongo(ctx));
      if (s === "redis") installs.redis = await timed(log, "redis: provisioning", () => provisionRedis(ctx));
    }),
  );
  return installs;
}

/** Downloads/builds everything local mode needs, without starting anything. Idempotent. */
export async function provisionInfra(
  opts: { log?: LogFn; cacheDir?: string; env?: Record<string, string | undefined> } = {},
): Promise<{
  cacheDir: string;
  kafka: KafkaInstall;
  mongo: MongoInstall;
  redis: RedisInstall;
}> {
  const log = opts.log ?? defaultLog;
  const cacheDir = resolveCacheDir(opts.cacheDir, opts.env ?? process.env);
  const installs = await timed(log, `provisioning into ${cacheDir}`, () =>
    provision(SERVICES, cacheDir, log),
  );
  if (!installs.kafka || !installs.mongo || !installs.redis)
    throw new Error("internal: provisioning incomplete");
  return { cacheDir, kafka: installs.kafka, mongo: installs.mongo, redis: installs.redis };
}

async function startLocal(
  services: ServiceName[],
  opts: { cacheDir: string; log: LogFn; persist: boolean; readyTimeoutMs: number; identity?: LocalIdentity },
): Promise<{ started: StartedService[]; cleanup: () => Promise<void> }> {
  const installs = await provision(services, opts.cacheDir, opts.log);
  const { ctx, cleanup } = await openLocalRun(opts);
  const identity = opts.identity;

  const starters: Record<ServiceName, () => Promise<StartedService>> = {
    kafka: () =>
      startLocalKafka(
        ctx,
        must(installs.kafka),
        identity ? { oauth: brokerOAuth({ issuerUrl: identity.issuer.url, secret: identity.secret }) } : {},
      ),
    mongo: () => startLocalMongo(ctx, must(installs.mongo)),
    redis: () => startLocalRedis(ctx, must(installs.redis)),
  };
  const results = await Promise.allSettled(services.map((s) => starters[s]()));
  const started = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failure = results.find((r) => r.status === "rejected");
  if (failure) {
    await Promise.allSettled(started.map((s) => s.stop()));
    await cleanup();
    throw failure.reason;
  }
  return { started, cleanup };
}

function must<T>(v: T | undefined): T {
  if (v === undefined) throw new Error("internal: service was not provisioned");
  return v;
}

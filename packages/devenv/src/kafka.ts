import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fixIdleRequestQueueLoop } from "@taituri/kafka/request-queue";
import { Kafka, logLevel, type SASLOptions } from "kafkajs";
import { ensureInstalled } from "./cache.ts";
import type { LocalContext } from "./local.ts";
import { choosePort, DEFAULT_PORTS, freePort, LOOPBACK } from "./ports.ts";
import {
  ForeignServerError,
  retryOnPortClash,
  type ServerProcess,
  spawnServer,
  waitUntilReady,
} from "./process.ts";
import { ensureSystemBinary } from "./system.ts";
import type { LogFn, StartedService } from "./types.ts";
import { run, timed } from "./util.ts";

// Clients made here and in the tests that use this infrastructure are kafkajs's own, not
// createKafka's: they get the same fix of its millisecond timer (packages/kafka/src/request-queue.ts).
fixIdleRequestQueueLoop();

export const KAFKA_VERSION = "4.1.2";
const SCALA_VERSION = "2.13";
const LOG4J_VERSION = "2.25.3";
const DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1";

// Kafka's own poms bring slf4j-api 1.7.x, so the log4j binding must be the slf4j-1 one
// (log4j-slf4j-impl); log4j-slf4j2-impl would be silently ignored and Kafka would log nothing.
// kafka-tools (CLI tools, pulls in Connect + Jetty) is left out: the broker and StorageTool live in kafka_2.13.
function pom(): string {
  const dep = (g: string, a: string, v: string) =>
    `    <dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;
  return `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.taituri.infra</groupId><artifactId>kafka-local</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
${dep("org.apache.kafka", `kafka_${SCALA_VERSION}`, KAFKA_VERSION)}
${dep("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION)}
${dep("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION)}
  </dependencies>
</project>
`;
}

const LOG4J2_XML = `<?xml version="1.0" encoding="UTF-8"?>
<!-- stdout is redirected to the run's kafka.log by the launcher -->
<Configuration status="WARN">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <!-- full config dumps on every start; server.properties next to this file is the source of truth -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
`;

export interface KafkaInstall {
  libDir: string;
  java: string;
}

async function findJava(ctx: { cacheDir: string; log: LogFn }): Promise<string> {
  const java = await ensureSystemBinary({
    binary: "java",
    aptPackage: "openjdk-17-jre-headless",
    cacheDir: ctx.cacheDir,
    log: ctx.log,
  });
  // `java -version` prints to stderr, e.g. `openjdk version "17.0.15" 2025-04-15`.
  const { stderr } = await run(java, ["-version"]);
  const m = /version "(\d+)(?:\.(\d+))?/.exec(stderr);
  const major = m ? Number(m[1] === "1" ? m[2] : m[1]) : 0;
  if (major < 17) throw new Error(`Kafka ${KAFKA_VERSION} needs Java 17+, found: ${stderr.split("\n")[0]}`);
  return java;
}

/** Downloads the broker's jars from Maven Central into `<cache>/kafka-<version>/lib`, once. */
export async function provisionKafka(ctx: { cacheDir: string; log: LogFn }): Promise<KafkaInstall> {
  const java = await findJava(ctx);
  const dir = join(ctx.cacheDir, `kafka-${KAFKA_VERSION}`);
  await ensureInstalled({
    dir,
    version: `kafka_${SCALA_VERSION}-${KAFKA_VERSION} log4j-${LOG4J_VERSION}`,
    log: ctx.log,
    what: "kafka provisioning",
    build: async (scratch) => {
      const mvn = await ensureSystemBinary({
        binary: "mvn",
        aptPackage: "maven",
        cacheDir: ctx.cacheDir,
        log: ctx.log,
      });
      await writeFile(join(scratch, "pom.xml"), pom());
      await timed(ctx.log, `kafka: downloading Kafka ${KAFKA_VERSION} jars from Maven Central`, () =>
        run(
          mvn,
          [
            "-q",
            "-B",
            `${DEPENDENCY_PLUGIN}:copy-dependencies`,
            "-DoutputDirectory=lib",
            "-DincludeScope=runtime",
          ],
          { cwd: scratch, timeoutMs: 10 * 60_000 },
        ),
      );
      if (!existsSync(join(scratch, "lib", `kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar`))) {
        throw new Error(
          `maven finished but kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar is missing from ${scratch}/lib`,
        );
      }
    },
  });
  return { libDir: join(dir, "lib"), java };
}

/**
 * An extra listener that wants SASL (SASL_PLAINTEXT): for testing clients' credentials on a real
 * broker. Each user can log in with PLAIN and with SCRAM-SHA-256 (its credential is written into the
 * storage at format time, as KRaft wants). The PLAINTEXT listener stays, for the readiness probe.
 */
export interface KafkaSaslListener {
  /** user name -> password */
  users: Readonly<Record<string, string>>;
}

/**
 * The broker as Taituri's services meet it everywhere but in a quick outage test: clients log in
 * with SASL/OAUTHBEARER, their token checked by Kafka's own validator against an OIDC issuer's
 * JWKS, and Kafka's StandardAuthorizer decides what each principal (`User:<token sub>`) may do from
 * ACLs. There is no PLAINTEXT listener: an anonymous client cannot even connect. The super user logs
 * in with PLAIN on the same listener (tools, tests, ACL set-up) and on the controller listener (the
 * broker itself).
 */
export interface KafkaOAuth {
  /** The issuer identifier the tokens must carry (`iss`). */
  issuerUrl: string;
  /** Where the broker fetches the signing keys; allowed by the JVM property Kafka 4 requires. */
  jwksUrl: string;
  /** The audience the tokens must carry (`aud`). */
  audience: string;
  /** The super user's PLAIN credentials. */
  admin: { username: string; password: string };
  /** connections.max.reauth.ms (default 10 minutes). */
  maxReauthMs?: number;
}

/** server.properties lines of the OAUTHBEARER client listener (CLIENT) and the controller's. */
export function oauthListenerProperties(oauth: KafkaOAuth): [string, string | number, string][] {
  const { username, password } = oauth.admin;
  if (!/^[\w.~-]+$/.test(username) || !/^[\w.~-]+$/.test(password))
    throw new Error("the Kafka super user's name and password here are letters, digits and ._~- only");
  const plain = `org.apache.kafka.common.security.plain.PlainLoginModule required username="${username}" password="${password}" user_${username}="${password}";`;
  return [
    [
      "listener.name.client.sasl.enabled.mechanisms",
      "OAUTHBEARER,PLAIN",
      "services: OAUTHBEARER; super user: PLAIN",
    ],
    [
      "listener.name.client.oauthbearer.sasl.jaas.config",
      "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
      "",
    ],
    [
      "listener.name.client.oauthbearer.sasl.server.callback.handler.class",
      "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
      "Kafka's own validator: signature against the JWKS, exp, iss, aud",
    ],
    ["listener.name.client.plain.sasl.jaas.config", plain, "the super user only"],
    ["listener.name.controller.sasl.enabled.mechanisms", "PLAIN", ""],
    [
      "listener.name.controller.plain.sasl.jaas.config",
      plain,
      "the broker talks to its controller as the super user",
    ],
    ["sasl.mechanism.controller.protocol", "PLAIN", ""],
    ["sasl.mechanism.inter.broker.protocol", "PLAIN", ""],
    ["sasl.oauthbearer.jwks.endpoint.url", oauth.jwksUrl, ""],
    ["sasl.oauthbearer.expected.issuer", oauth.issuerUrl, ""],
    ["sasl.oauthbearer.expected.audience", oauth.audience, ""],
    [
      "sasl.oauthbearer.jwks.endpoint.refresh.ms",
      60000,
      "a key withdrawn from the JWKS stops working within a minute (default: an hour)",
    ],
    [
      "connections.max.reauth.ms",
      oauth.maxReauthMs ?? 600000,
      "a session ends with its token (or after this): clients log in again with a fresh token",
    ],
    ["authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer", ""],
    ["super.users", `User:${username}`, ""],
    ["allow.everyone.if.no.acl.found", "false", "the default, said aloud: no ACL, no access"],
  ];
}

/** server.properties lines of the SASL listener named SASL on `port`. */
export function saslListenerProperties(port: number, sasl: KafkaSaslListener): [string, string, string][] {
  // Names and passwords go unquoted into server.properties, a JAAS line and StorageTool's
  // --add-scram argument, each with its own escaping: a test needs none of those characters.
  for (const [user, password] of Object.entries(sasl.users))
    if (!/^[\w.~-]+$/.test(user) || !/^[\w.~-]+$/.test(password))
      throw new Error(`SASL user ${user}: names and passwords here are letters, digits and ._~- only`);
  const plainUsers = Object.entries(sasl.users)
    .map(([user, password]) => `user_${user}="${password}"`)
    .join(" ");
  return [
    ["listener.name.sasl.sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256", `SASL_PLAINTEXT on ${port}`],
    [
      "listener.name.sasl.plain.sasl.jaas.config",
      `org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
      "PLAIN checks passwords against this list",
    ],
    [
      "listener.name.sasl.scram-sha-256.sasl.jaas.config",
      "org.apache.kafka.common.security.scram.ScramLoginModule required;",
      "SCRAM against the credentials StorageTool wrote (--add-scram)",
    ],
  ];
}

function serverProperties(p: {
  port: number;
  controllerPort: number;
  dataDir: string;
  sasl?: { port: number; listener: KafkaSaslListener };
  oauth?: KafkaOAuth;
}): string {
  const { sasl, oauth } = p;
  // With OAuth the main listener is CLIENT (SASL only); without, PLAINTEXT (outage tests, docker).
  const main = oauth ? "CLIENT" : "PLAINTEXT";
  const lines: [string, string | number, string][] = [
    ["process.roles", "broker,controller", "one JVM is both broker and KRaft controller"],
    ["node.id", 1, ""],
    [
      "controller.quorum.voters",
      `1@${LOOPBACK}:${p.controllerPort}`,
      "static single-voter quorum: no --standalone dance",
    ],
    [
      "listeners",
      `${main}://${LOOPBACK}:${p.port},CONTROLLER://${LOOPBACK}:${p.controllerPort}${sasl ? `,SASL://${LOOPBACK}:${sasl.port}` : ""}`,
      "loopback only",
    ],
    [
      "advertised.listeners",
      `${main}://${LOOPBACK}:${p.port}${sasl ? `,SASL://${LOOPBACK}:${sasl.port}` : ""}`,
      "what clients are told to reconnect to",
    ],
    ["controller.listener.names", "CONTROLLER", ""],
    ["inter.broker.listener.name", main, ""],
    [
      "listener.security.protocol.map",
      oauth
        ? `CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT${sasl ? ",SASL:SASL_PLAINTEXT" : ""}`
        : `PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${sasl ? ",SASL:SASL_PLAINTEXT" : ""}`,
      "",
    ],
    ...(oauth ? oauthListenerProperties(oauth) : []),
    ...(sasl ? saslListenerProperties(sasl.port, sasl.listener) : []),
    ["log.dirs", p.dataDir, ""],
    ["num.partitions", 1, ""],
    ["offsets.topic.replication.factor", 1, "default 3 cannot be met by one broker: groups would never work"],
    ["offsets.topic.num.partitions", 1, "default 50 makes the first group join slow"],
    ["transaction.state.log.replication.factor", 1, "same for transactions / idempotent producers"],
    ["transaction.state.log.min.isr", 1, ""],
    ["transaction.state.log.num.partitions", 1, ""],
    ["share.coordinator.state.topic.replication.factor", 1, ""],
    ["share.coordinator.state.topic.min.isr", 1, ""],
    ["group.initial.rebalance.delay.ms", 0, "default 3 s delay before the first rebalance slows every test"],
    ["auto.create.topics.enable", "false", "topics must be created explicitly, as in production"],
    ["log.retention.check.interval.ms", 300000, ""],
  ];
  return `${lines.map(([k, v, why]) => `${why ? `# ${why}\n` : ""}${k}=${v}`).join("\n")}\n`;
}

async function readClusterId(dataDir: string): Promise<string | undefined> {
  try {
    const text = await readFile(join(dataDir, "meta.properties"), "utf8");
    return /^cluster\.id=(.+)$/m.exec(text)?.[1]?.trim();
  } catch {
    return undefined;
  }
}

export async function startLocalKafka(
  ctx: LocalContext,
  install: KafkaInstall,
  options: { oauth?: KafkaOAuth } = {},
): Promise<StartedService> {
  const broker = await startLocalKafkaBroker(ctx, install, options);
  return { name: "kafka", endpoint: broker.brokers.join(","), stop: () => broker.stop() };
}

/** kafkajs's `sasl` option for the super user of a broker started with `oauth`. */
export function superUserSasl(oauth: Pick<KafkaOAuth, "admin">): SASLOptions {
  return { mechanism: "plain", username: oauth.admin.username, password: oauth.admin.password };
}

/** A local broker whose ports, config and data dir stay fixed, so it can be stopped and launched again. */
export interface LocalKafkaBroker {
  brokers: string[];
  /** The SASL listener's address, when one was asked for. */
  saslBrokers?: string[];
  /** Launches the JVM again (no-op while it runs) and resolves once the readiness probe passes. */
  start(): Promise<void>;
  /** SIGTERM (SIGKILL after 30 s); the data dir is kept. Resolves once the process is gone. */
  stop(): Promise<void>;
  isRunning(): boolean;
}

/**
 * Formats the storage and launches the broker. The first launch may move to other ports after a
 * lost port race; later launches reuse the same ports, because clients reconnect to the address
 * they were given.
 */
export async function startLocalKafkaBroker(
  ctx: LocalContext,
  install: KafkaInstall,
  options: { sasl?: KafkaSaslListener; oauth?: KafkaOAuth } = {},
): Promise<LocalKafkaBroker> {
  const { oauth } = options;
  const dataDir = ctx.persist ? join(ctx.cacheDir, "data", "kafka") : join(ctx.runDir, "kafka-data");
  const confDir = join(ctx.runDir, "kafka-config");
  await mkdir(dataDir, { recursive: true });
  await mkdir(confDir, { recursive: true });
  const logFile = join(ctx.logDir, "kafka.log");
  const log4jFile = join(confDir, "log4j2.xml");
  await writeFile(log4jFile, LOG4J2_XML);
  const classpath = `${install.libDir}/*`;
  const jvmLogging = [`-Dlog4j2.configurationFile=${log4jFile}`, "-Djava.awt.headless=true"];
  // Kafka 4 fetches an OAuth URL only when this JVM property lists it (KIP-1139's hardening).
  const jvmOAuth = oauth ? [`-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=${oauth.jwksUrl}`] : [];
  const clusterId = (await readClusterId(dataDir)) ?? newClusterId();
  const propsFile = join(confDir, "server.properties");

  const launch = async (brokers: string[]): Promise<ServerProcess> => {
    const server = spawnServer({
      name: "kafka",
      command: install.java,
      args: [
        // The heap kafka-server-start.sh gives a broker. With 512 MB, about 160 MB of it live, G1 ran
        // a concurrent cycle every 2 s whose remark pauses took 8-16 ms.
        "-Xms1g",
        "-Xmx1g",
        // ZGC, not the start script's G1: the broker shares a core with the load generator (bench/),
        // and G1's young pauses of 6-9 ms there were the produce round trip's p99. With ZGC the
        // ingress benchmark's Kafka round trip went from p99 7-8 ms to 5.7-6.5 and the broker used
        // 0.3 of a core instead of 0.45 (docs/infrastructure.md).
        "-XX:+UseZGC",
        "-XX:+ExitOnOutOfMemoryError",
        ...jvmLogging,
        ...jvmOAuth,
        "-cp",
        classpath,
        "kafka.Kafka",
        propsFile,
      ],
      cwd: confDir,
      logFile,
      log: ctx.log,
    });
    try {
      // A fresh probe each launch: a restarted broker has to prove again that it is ours and usable.
      await timed(ctx.log, `kafka: waiting for broker on ${brokers[0]} (pid ${server.pid})`, () =>
        waitUntilReady({
          server,
          timeoutMs: ctx.readyTimeoutMs,
          probe: kafkaProbe(brokers, clusterId, oauth && superUserSasl(oauth)),
        }),
      );
    } catch (err) {
      await server.stop(5_000);
      throw err;
    }
    return server;
  };

  const first = await retryOnPortClash("kafka", ctx.log, async (attempt) => {
    // After a lost race the default ports are known to be contested; don't walk into them again.
    const avoid = new Set<number>(attempt > 1 ? [DEFAULT_PORTS.kafka, DEFAULT_PORTS.kafkaController] : []);
    const port = await choosePort(DEFAULT_PORTS.kafka, avoid);
    const controllerPort = await choosePort(DEFAULT_PORTS.kafkaController, avoid.add(port));
    const sasl = options.sasl && { port: await freePort(), listener: options.sasl };
    await writeFile(
      propsFile,
      serverProperties({
        port,
        controllerPort,
        dataDir,
        ...(sasl ? { sasl } : {}),
        ...(oauth ? { oauth } : {}),
      }),
    );

    await timed(ctx.log, "kafka: formatting storage (KRaft)", async () => {
      const { stdout, stderr } = await run(
        install.java,
        [
          ...jvmLogging,
          "-cp",
          classpath,
          "kafka.tools.StorageTool",
          "format",
          "--cluster-id",
          clusterId,
          "--config",
          propsFile,
          // persistent data is formatted once; a fresh run dir is always empty
          "--ignore-formatted",
          ...Object.entries(sasl?.listener.users ?? {}).flatMap(([user, password]) => [
            "--add-scram",
            `SCRAM-SHA-256=[name=${user},password=${password}]`,
          ]),
        ],
        { timeoutMs: 120_000 },
      );
      await appendFile(logFile, `=== StorageTool format\n${stdout}${stderr}`);
    });
    const brokers = [`${LOOPBACK}:${port}`];
    const saslBrokers = sasl ? [`${LOOPBACK}:${sasl.port}`] : undefined;
    return { brokers, saslBrokers, server: await launch(brokers) };
  });

  const { brokers, saslBrokers } = first;
  let server = first.server;
  let starting: Promise<void> | undefined;
  return {
    brokers,
    ...(saslBrokers ? { saslBrokers } : {}),
    start: () => {
      starting ??= (async () => {
        if (!server.hasExited()) return;
        server = await launch(brokers);
      })().finally(() => {
        starting = undefined;
      });
      return starting;
    },
    stop: async () => {
      await starting?.catch(() => {});
      await server.stop(30_000);
    },
    isRunning: () => !server.hasExited(),
  };
}

/**
 * A Kafka cluster id: 16 random bytes, base64url without padding (22 chars). Kafka's own
 * Uuid.randomUuid() avoids ids that start with "-"; so must we, or StorageTool's argument parser
 * reads `--cluster-id -abc…` as a missing value (seen here, about one run in 32).
 */
export function newClusterId(random: () => Buffer = () => randomBytes(16)): string {
  for (;;) {
    const id = random().toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/**
 * Ready means usable by the services, not just "port open": the cluster id matches ours (so it is
 * not a foreign broker), a topic can be created and deleted, and the group coordinator answers —
 * the first FindCoordinator creates __consumer_offsets, which otherwise slows the first test's join.
 */
export function kafkaProbe(
  brokers: string[],
  clusterId: string | undefined,
  sasl?: SASLOptions,
): () => Promise<void> {
  let identified = false;
  let topicRoundTrip = false;
  return async () => {
    const kafka = new Kafka({
      clientId: "taituri-infra-probe",
      brokers,
      ...(sasl ? { sasl } : {}),
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1_000,
      requestTimeout: 10_000,
      retry: { retries: 2, initialRetryTime: 200 },
    });
    const admin = kafka.admin();
    await admin.connect();
    try {
      if (!identified) {
        const cluster = await admin.describeCluster();
        if (clusterId && cluster.clusterId !== clusterId) {
          throw new ForeignServerError(
            `a different Kafka (cluster ${cluster.clusterId}) answers on ${brokers.join(",")}; expected ${clusterId}`,
          );
        }
        identified = true;
      }
      if (!topicRoundTrip) {
        const topic = `taituri-infra-probe-${randomBytes(4).toString("hex")}`;
        await admin.createTopics({
          topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
          waitForLeaders: true,
        });
        await admin.deleteTopics({ topics: [topic], timeout: 10_000 });
        topicRoundTrip = true;
      }
      await admin.describeGroups(["taituri-infra-probe"]);
    } finally {
      await admin.disconnect();
    }
  };
}

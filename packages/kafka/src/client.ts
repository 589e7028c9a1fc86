import type { Logger } from "@taituri/logging";
import { Kafka, type LogEntry, logLevel, type SASLOptions } from "kafkajs";
import { useNativeCrc32c } from "./crc32c.ts";
import { growEncodersUnfilled } from "./encoder.ts";
import { levelOf } from "./log-levels.ts";
import { fixIdleRequestQueueLoop } from "./request-queue.ts";
import { type KafkaSecuritySettings, kafkaSecurity } from "./security.ts";

export interface KafkaOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** TLS and SASL (the service's config); unset: plaintext without SASL. */
  security?: KafkaSecuritySettings;
  /**
   * kafkajs's SASL options as they are, in place of those `security` would give: for tests and
   * tools that log in as a broker's super user (@taituri/devenv's `infra.kafka.client`).
   */
  sasl?: SASLOptions;
  /**
   * While it answers true, kafkajs's own lines go at debug: someone else reports the outcome (a
   * service's start-up logs one line per attempt to reach the brokers, where kafkajs would log
   * each connection refused and each of its retries).
   */
  quiet?: () => boolean;
}

/** A kafkajs client whose own log lines go through the service's pino logger, at the level they mean (levelOf). */
export function createKafka(options: KafkaOptions): Kafka {
  const logger = options.logger.child({ component: "kafkajs" });
  if (!fixIdleRequestQueueLoop())
    logger.warn(
      "kafkajs is not the version the request-queue fix was written for: each broker connection may wake this process every millisecond (packages/kafka/src/request-queue.ts)",
    );
  if (!useNativeCrc32c())
    logger.warn(
      "kafkajs checksums record batches in JavaScript: another kafkajs version, or its encoder loaded before this client (packages/kafka/src/crc32c.ts)",
    );
  if (!growEncodersUnfilled())
    logger.warn(
      "kafkajs is not the version whose encoder growth was checked: its requests are encoded in zero-filled buffers, as kafkajs does (packages/kafka/src/encoder.ts)",
    );
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    ...(options.security ? kafkaSecurity(options.security) : {}),
    ...(options.sasl ? { sasl: options.sasl } : {}),
    // Fail a call to a broker that is gone in seconds, not the defaults' minutes: the webhook has to
    // answer Meta 503 quickly rather than hang.
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 2000 },
    logLevel: logLevel.INFO,
    logCreator: () => (entry: LogEntry) => {
      // kafkajs's own timestamp and logger name repeat pino's time and the component.
      const { message, timestamp: _timestamp, logger: _logger, ...rest } = entry.log;
      logger[options.quiet?.() ? "debug" : levelOf(entry)]({ namespace: entry.namespace, ...rest }, message);
    },
  });
}

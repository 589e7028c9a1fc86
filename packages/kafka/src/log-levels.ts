import { createRequire } from "node:module";
import { type LogEntry, logLevel } from "kafkajs";

export type Level = "error" | "warn" | "info" | "debug";

const levels: Record<number, Level> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/** One row of kafkajs's table of Kafka protocol errors. */
export interface ProtocolError {
  type: string;
  code: number;
  retriable: boolean;
  message: string;
}

const require = createRequire(import.meta.url);

/**
 * kafkajs's table of Kafka protocol errors, from which it makes the errors it throws. Its public
 * API does not export it; log-levels.test.ts pins what this file reads of it.
 */
export function kafkajsProtocolErrors(): ProtocolError[] {
  return (require("kafkajs/src/protocol/error.js") as { errorCodes: ProtocolError[] }).errorCodes;
}

// kafkajs's Connection logs an error answer by its message only ("error": e.message).
const retriableAnswers = new Set(
  kafkajsProtocolErrors()
    .filter((error) => error.retriable)
    .map((error) => error.message),
);

/** What kafkajs's Connection logs for an error answer to a request: `Response <Api>(key: …)`. */
const RESPONSE = /^Response (\w+)\(key: \d+, version: \d+\)$/;

/** kafkajs's warning, at each producer's creation, for an idempotent producer with bounded retries. */
export const BOUNDED_RETRIES_WARNING =
  "Limiting retries for the idempotent producer may invalidate EoS guarantees";

/**
 * The level a kafkajs log line is written at: kafkajs's own, except for three lines whose level
 * says more than the event means. Each is a broker's answer or a setting that something else owns
 * the outcome of, so an error that is one is still logged as one, by whoever owns it.
 *
 * - A retriable error answer. kafkajs's Connection logs every error answer at ERROR, then throws
 *   it to the code that sent the request. A retriable one (a group coordinator still loading on a
 *   fresh broker, a leader election, a coordinator that moved) is retried by kafkajs's retrier,
 *   and if the retries run out the caller fails with it: a send rejected, a start that stops, a
 *   consumer's "Crash" line, all at error.
 * - CreateTopics' "Topic creation errors", which kafkajs makes of any topic refused. Services
 *   starting together race to create the same topics, and the losers' topics "already exist":
 *   kafkajs's createTopics resolves when every refusal is that one, and throws anything else,
 *   which ensureTopics rethrows and the service's start fails with.
 * - The bounded-retries warning, a statement about our producer's settings at each creation: what
 *   it warns about, a batch that failed after the broker wrote it taken back and its sequence
 *   numbers given to the next, EventProducer prevents by sending through a new producer id after a
 *   failed request (producer.ts).
 */
export function levelOf(entry: LogEntry): Level {
  const { namespace, level, log } = entry;
  if (namespace === "Connection" && level === logLevel.ERROR) {
    const api = RESPONSE.exec(log.message)?.[1];
    const answer = (log as { error?: unknown }).error;
    if (api && typeof answer === "string") {
      if (retriableAnswers.has(answer)) return "debug";
      if (api === "CreateTopics" && answer === "Topic creation errors") return "debug";
    }
  }
  if (namespace === "Producer" && level === logLevel.WARN && log.message === BOUNDED_RETRIES_WARNING)
    return "debug";
  return levels[level] ?? "info";
}

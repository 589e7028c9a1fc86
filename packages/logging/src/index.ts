import { trace } from "@opentelemetry/api";
import { type DestinationStream, type Logger, pino } from "pino";
import pretty from "pino-pretty";
import { redact } from "./privacy.ts";

export { configurePseudonyms, DEV_PSEUDONYM_KEY, pseudonym, redact } from "./privacy.ts";
export type { Logger };

/**
 * How lines are written: `json`, one object a line, for log shipping (Loki, Elasticsearch, Cloud
 * Logging parse it); `pretty`, one readable line each, for a person at a terminal (`npm start`).
 */
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  service: string;
  level?: string;
  environment?: string;
  /** `json` unless given. */
  format?: LogFormat;
  /** Where lines go; stdout by default. Tests pass a stream to read what was logged. */
  destination?: DestinationStream;
}

/**
 * A pino logger whose every line carries the active trace and span ids, so a log line found in a
 * search leads straight to its trace in Jaeger. Every phone-number-like id in a line, wherever it
 * came from (an error message, a Kafka key, a round id), is written as its pseudonym, in either
 * format: the pretty printer reads the line after redaction.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.format === "pretty" ? prettyStream(options.destination) : options.destination;
  return pino(
    {
      level: options.level ?? "info",
      base: { service: options.service, env: options.environment ?? "local" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // On the finished line: ids hide in error messages and stacks that no serializer sees.
      hooks: { streamWrite: redact },
      mixin() {
        const span = trace.getActiveSpan();
        if (!span) return {};
        const { traceId, spanId } = span.spanContext();
        return { trace_id: traceId, span_id: spanId };
      },
    },
    destination,
  );
}

/**
 * pino-pretty in this process rather than in a transport's worker thread: a line logged just
 * before the process exits (a failed start) is written, not lost with the thread. One line per
 * entry, so `npm start`'s `[service]` prefix stays on each; the service and environment are that
 * prefix's and the deployment's, so they are left out.
 */
function prettyStream(destination: DestinationStream | undefined): DestinationStream {
  return pretty({
    singleLine: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,service,env,component",
    messageFormat: "{if component}{component}: {end}{msg}",
    sync: true,
    ...(destination ? { destination } : {}),
  });
}

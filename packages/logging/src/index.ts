import { trace } from "@opentelemetry/api";
import { type DestinationStream, type Logger, pino } from "pino";
import { redact } from "./privacy.ts";

export { configurePseudonyms, DEV_PSEUDONYM_KEY, pseudonym, redact } from "./privacy.ts";
export type { Logger };

export interface LoggerOptions {
  service: string;
  level?: string;
  environment?: string;
  /** Where lines go; stdout by default. Tests pass a stream to read what was logged. */
  destination?: DestinationStream;
}

/**
 * A pino logger whose every line carries the active trace and span ids, so a log line found in a
 * search leads straight to its trace in Jaeger. Every phone-number-like id in a line, wherever it
 * came from (an error message, a Kafka key, a round id), is written as its pseudonym.
 */
export function createLogger(options: LoggerOptions): Logger {
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
    options.destination,
  );
}

import { Writable } from "node:stream";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { createLogger, type Logger } from "@taituri/logging";
import { startTelemetry } from "@taituri/telemetry/sdk";

/** Every span and log line the services of a privacy test export, kept in memory to be searched. */
export interface Capture {
  exporter: InMemorySpanExporter;
  processor: SimpleSpanProcessor;
  telemetry: { shutdown(): Promise<void> };
  logger: Logger;
  logLines: string[];
}

/**
 * Starts the OpenTelemetry SDK, its instrumentations on, with an in-memory exporter, and a logger
 * at debug level that keeps every line. Call it before any service module is imported (import the
 * services dynamically afterwards): the instrumentations patch the libraries as they load. One SDK
 * per process. startTelemetry puts its privacy processor before ours, as in every service.
 */
export function startCapture(serviceName: string): Capture {
  const exporter = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor(exporter);
  const telemetry = startTelemetry({ serviceName, spanProcessors: [processor] });
  const logLines: string[] = [];
  const logger = createLogger({
    service: serviceName,
    level: "debug",
    destination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  });
  return { exporter, processor, telemetry, logger, logLines };
}

/** Every string an exporter would send for a span: name, attributes, events, links, status, resource. */
export function spanText(span: ReadableSpan): string {
  return JSON.stringify({
    name: span.name,
    attributes: span.attributes,
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes })),
    links: span.links.map((l) => l.attributes),
    status: span.status,
    resource: span.resource.attributes,
    scope: span.instrumentationScope,
  });
}

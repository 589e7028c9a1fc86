import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

export interface TelemetryOptions {
  serviceName: string;
  serviceVersion?: string;
  environment?: string;
  /**
   * Span processors to use instead of the exporters chosen by the standard OTEL_TRACES_EXPORTER /
   * OTEL_EXPORTER_OTLP_* variables; tests pass one with an in-memory exporter.
   */
  spanProcessors?: SpanProcessor[];
}

export interface Telemetry {
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry Node SDK. Everything else (exporter, endpoint, sampler, propagators) is
 * read by the SDK from the standard OTEL_* variables, so operators configure it the way they
 * configure any other OpenTelemetry service. Call it before the app's own code runs.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      [ATTR_SERVICE_VERSION]: options.serviceVersion ?? "0.0.0",
      // Semantic conventions 1.27+ name; kept literal because it is still in the incubating entry point.
      "deployment.environment.name": options.environment ?? "local",
    }),
    ...(options.spanProcessors ? { spanProcessors: options.spanProcessors } : {}),
    instrumentations: [],
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return {
    shutdown() {
      stopped ??= sdk.shutdown();
      return stopped;
    },
  };
}

import {
  type Attributes,
  type AttributeValue,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { Span as SdkSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { pseudonym, redact } from "@taituri/logging";

export { context, pseudonym, redact, type Span, SpanKind, SpanStatusCode, trace };

const setter = {
  set(carrier: Record<string, string>, key: string, value: string) {
    carrier[key] = value;
  },
};

const getter = {
  keys: (carrier: Record<string, string>) => Object.keys(carrier),
  get: (carrier: Record<string, string>, key: string) => carrier[key],
};

/** The W3C trace context headers (traceparent, tracestate) among `headers`, and nothing else. */
export function traceContextOf(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["traceparent", "tracestate"]) {
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** W3C trace context (traceparent, tracestate, baggage) of `ctx`, as plain headers. */
export function injectContext(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier, setter);
  return carrier;
}

/** The context carried by headers written with injectContext (or by any W3C-propagating peer). */
export function extractContext(headers: Record<string, string>, base: Context = context.active()): Context {
  return propagation.extract(base, headers, getter);
}

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** Parent context; the active one by default. */
  parent?: Context;
}

/**
 * Runs `fn` inside a new active span. A thrown error is recorded on the span, marks it ERROR and is
 * rethrown; the span always ends, whatever happens.
 */
export async function withSpan<T>(
  tracerName: string,
  name: string,
  options: SpanOptions,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const tracer = trace.getTracer(tracerName);
  const parent = options.parent ?? context.active();
  return tracer.startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes ?? {} },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (error) {
        // Error messages name rounds and conversations, and so phone numbers: redacted here.
        span.recordException(
          error instanceof Error
            ? { name: error.name, message: redact(error.message), stack: redact(error.stack ?? "") }
            : redact(String(error)),
        );
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: error instanceof Error ? redact(error.message) : undefined,
        });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/**
 * Searchable span attributes for a conversation "<phone_number_id>:<shopper>": the shopper's
 * pseudonym (`shopper.id`) and the conversation id with its phone numbers redacted
 * (`conversation.id`), the values docs/operations.md tells an operator to search Jaeger for.
 */
export function conversationAttributes(conversationId: string): Attributes {
  const shopper = conversationId.slice(conversationId.indexOf(":") + 1);
  return { "conversation.id": redact(conversationId), "shopper.id": pseudonym(shopper) };
}

const redactValue = (value: AttributeValue | undefined): AttributeValue | undefined => {
  if (typeof value === "string") return redact(value);
  if (Array.isArray(value))
    return value.map((v) => (typeof v === "string" ? redact(v) : v)) as AttributeValue;
  return value;
};

function redactAttributes(
  attributes: Attributes | undefined,
  set: (key: string, value: AttributeValue) => void,
) {
  for (const [key, value] of Object.entries(attributes ?? {})) {
    const redacted = redactValue(value);
    if (redacted !== undefined && redacted !== value) set(key, redacted);
  }
}

/**
 * A span processor that, as each span ends and before any exporter sees it, writes every
 * phone-number-like id in its name, attributes, events, links and status as its pseudonym.
 * Our own spans set pseudonyms already; this catches what instrumentations copy from the wire
 * (Redis commands holding the limiter's per-shopper keys, URLs, Kafka keys, error messages).
 * It must come first among the provider's processors.
 */
export function privacySpanProcessor(): SpanProcessor {
  return {
    onStart() {},
    onEnding(span: SdkSpan) {
      const name = redact(span.name);
      if (name !== span.name) span.updateName(name);
      redactAttributes(span.attributes, (key, value) => span.setAttribute(key, value));
      // Events and links can no longer be changed through the API: their attribute maps are.
      for (const item of [...span.events, ...span.links]) {
        const attributes = item.attributes as Attributes | undefined;
        if (attributes) redactAttributes(attributes, (key, value) => (attributes[key] = value));
      }
      if (span.status.message) span.setStatus({ ...span.status, message: redact(span.status.message) });
    },
    onEnd() {},
    forceFlush: async () => {},
    shutdown: async () => {},
  };
}

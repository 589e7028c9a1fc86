import {
  type Attributes,
  type AttributeValue,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { Span as SdkSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { pseudonym, redact } from "@taituri/logging";

export { context, pseudonym, ROOT_CONTEXT, redact, type Span, SpanKind, SpanStatusCode, trace };

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
  const parent = options.parent ?? context.active();
  return trace.getTracer(tracerName).startActiveSpan(
    name,
    // The attributes once the span is known to be kept: the SDK copies and checks those given here
    // before it samples, for the nine spans in ten at 10 % that nobody keeps. Our samplers are the
    // standard ratio and parent-based ones, which read no attribute.
    { kind: options.kind ?? SpanKind.INTERNAL },
    parent,
    async (span) => {
      if (options.attributes && span.isRecording()) span.setAttributes(options.attributes);
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

// What a server span says of the caller: the shopper's IP and browser (a user agent is close to a
// fingerprint on the checkout page), which the processor drops.
const CALLER_ADDRESS = [
  "user_agent.original",
  "http.user_agent",
  "client.address",
  "client.port",
  "network.peer.address",
  "network.peer.port",
  "http.client_ip",
  "net.peer.ip",
  "net.peer.port",
  "net.sock.peer.addr",
  "net.sock.peer.port",
  "http.request.header.x-forwarded-for",
  "http.request.header.forwarded",
  "http.request.header.x-real-ip",
];

/** "scheme://host" of an absolute URL, without any user:password@; "" for anything else. */
function originOf(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)(?:[^/?#@]*@)?([^/?#]*)/i.exec(url);
  return match ? `${match[1]}${match[2]}` : "";
}

/** The path of an absolute URL or of a request target, without query or fragment. */
function pathOf(url: string): string {
  const origin = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(url)?.[0].length ?? 0;
  const path = url.slice(origin).split(/[?#]/, 1)[0] ?? "";
  return path || "/";
}

/**
 * A path no route matched (a 404, or a route the Fastify instrumentation skips, like the webhook):
 * its first segment says where a request was going; what follows may be anyone's id.
 */
function coarsePath(path: string): string {
  const second = path.indexOf("/", 1);
  return second === -1 ? path : `${path.slice(0, second)}/*`;
}

const str = (value: AttributeValue | undefined) => (typeof value === "string" ? value : undefined);

/**
 * A server's view of a request, reduced to its route: URLs hold checkout session ids (each grants a
 * payment), order ids (the shopper's number, URL-encoded, which redact() could miss in an odd
 * encoding), the webhook's verify token and signed links' signatures in the query. The path becomes
 * the route template (`/checkout/:session`), the query goes, and so does the caller's address.
 * Method, route, status code and server address and port stay: what an SRE searches by.
 */
function reduceServerUrl(span: SdkSpan, attributes: Attributes): void {
  const target =
    str(attributes["url.path"]) ??
    str(attributes["http.target"]) ??
    str(attributes["url.full"]) ??
    str(attributes["http.url"]);
  if (target === undefined && attributes["url.query"] === undefined) return;
  const path = str(attributes["http.route"]) ?? coarsePath(pathOf(target ?? "/"));
  for (const key of ["url.path", "http.target"])
    if (attributes[key] !== undefined) span.setAttribute(key, path);
  for (const key of ["url.full", "http.url"]) {
    const url = str(attributes[key]);
    if (url !== undefined) span.setAttribute(key, `${originOf(url)}${path}`);
  }
  // A span named after the URL it served (no instrumentation of ours does, but one could).
  const asked = target === undefined ? "" : pathOf(target);
  if (asked !== path && asked.length > 1 && span.name.includes(asked))
    span.updateName(span.name.replace(asked, path));
  for (const key of ["url.query", ...CALLER_ADDRESS]) delete attributes[key];
}

/**
 * A call we make keeps its path (the Graph API's, a shop's endpoint), not its query: a query may
 * carry a token or a signature. Nor a user:password@ in the URL.
 */
function reduceClientUrl(span: SdkSpan, attributes: Attributes): void {
  for (const key of ["url.full", "http.url"]) {
    const url = str(attributes[key]);
    if (url !== undefined && /[?#@]/.test(url)) span.setAttribute(key, `${originOf(url)}${pathOf(url)}`);
  }
  const target = str(attributes["http.target"]);
  if (target?.includes("?")) span.setAttribute("http.target", pathOf(target));
  delete attributes["url.query"];
}

/**
 * A span processor that, as each span ends and before any exporter sees it, reduces URLs to what
 * an operator needs (server spans: the route, no query, no caller address; client spans: no query)
 * and writes every phone-number-like id and BSUID in its name, attributes, events, links and status
 * as its pseudonym. Our own spans set pseudonyms already; this catches what instrumentations copy
 * from the wire (Redis commands holding the limiter's per-shopper keys, URLs, Kafka keys, error
 * messages). It must come first among the provider's processors.
 */
export function privacySpanProcessor(): SpanProcessor {
  return {
    onStart() {},
    onEnding(span: SdkSpan) {
      // The SDK's attribute map: the API can set an attribute, not remove one.
      const attributes = span.attributes as Attributes;
      if (span.kind === SpanKind.CLIENT) reduceClientUrl(span, attributes);
      else if (span.kind === SpanKind.SERVER || span.kind === SpanKind.INTERNAL)
        reduceServerUrl(span, attributes);
      const name = redact(span.name);
      if (name !== span.name) span.updateName(name);
      redactAttributes(attributes, (key, value) => span.setAttribute(key, value));
      // Events and links can no longer be changed through the API: their attribute maps are.
      for (const item of [...span.events, ...span.links]) {
        const itemAttributes = item.attributes as Attributes | undefined;
        if (itemAttributes) redactAttributes(itemAttributes, (key, value) => (itemAttributes[key] = value));
      }
      if (span.status.message) span.setStatus({ ...span.status, message: redact(span.status.message) });
    },
    onEnd() {},
    forceFlush: async () => {},
    shutdown: async () => {},
  };
}

import { timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import {
  deadLetterTopic,
  encodeRecord,
  Header,
  type OutgoingMessage,
  ProducerQueueFullError,
  type Publisher,
  Records,
  type TopicNames,
} from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import type { Registry } from "@taituri/ops";
import type { inbound } from "@taituri/proto";
import {
  conversationAttributes,
  extractContext,
  pseudonym,
  ROOT_CONTEXT,
  redact,
  type Span,
  SpanKind,
  SpanStatusCode,
  withSpan,
} from "@taituri/telemetry";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from "fastify";
import { Counter, Histogram } from "prom-client";
import { RecentIds } from "./domain/recent-ids.ts";
import { checkSignature, signatureHeaderProblem } from "./domain/signature.ts";
import { limits, type ParsedWebhook, parseWebhook } from "./domain/webhook.ts";

export interface IngressAppDeps {
  appSecrets: readonly string[];
  verifyToken: string;
  bodyLimitBytes: number;
  topics: TopicNames;
  publisher: Publisher;
  logger: Logger;
  registry: Registry;
  /** Longest wait for Kafka's acknowledgement before answering 503 (Meta retries later). */
  publishTimeoutMs: number;
  /** How many recently stored event ids to remember for dropping Meta's retries early (0: none). */
  recentIdsCapacity: number;
  /** Fastify's timeouts for the public listener (httpListenerOptions of @taituri/config). */
  listener?: FastifyServerOptions;
  now?: () => Date;
}

/**
 * The public door: Meta's webhook. It answers 200 only once Kafka has every event of the body
 * (acks=all), and answers fast because it does nothing else: no conversation logic, no AI, no
 * payments. Anything it cannot store it refuses with a status that makes Meta retry. Its ops
 * endpoints have a listener of their own (service.ts): here any other path is a 404.
 */
export function buildIngressApp(deps: IngressAppDeps): FastifyInstance {
  const now = deps.now ?? (() => new Date());
  const recent = new RecentIds(deps.recentIdsCapacity);
  const app = Fastify({ ...deps.listener, logger: false, bodyLimit: deps.bodyLimitBytes });
  const requests = new Counter({
    name: "webhook_requests_total",
    help: "Webhook requests by outcome (accepted, duplicate, bad_signature, bad_json, too_large, unavailable, verify_ok, verify_refused) and reason (a bad signature's kind; unavailable: timeout, queue_full or error)",
    labelNames: ["outcome", "reason"],
    registers: [deps.registry],
  });
  const ackLatency = new Histogram({
    name: "webhook_ack_seconds",
    help: "Time from request to answer on POST /webhook, Kafka acknowledgement included",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [deps.registry],
  });
  const events = new Counter({
    name: "webhook_events_total",
    help: "Events produced from webhooks by kind (message type, status, error, unreadable)",
    labelNames: ["kind"],
    registers: [deps.registry],
  });

  // The signature covers the exact bytes Meta sent, so the body is kept raw and parsed by us later.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));

  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, request, reply) => {
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE" || error.statusCode === 413) {
      requests.inc({ outcome: "too_large", reason: "" });
      return reply.code(413).send({ error: `body over ${deps.bodyLimitBytes} bytes` });
    }
    deps.logger.error({ err: error, url: request.url }, "unhandled error");
    return reply
      .code(error.statusCode && error.statusCode < 500 ? error.statusCode : 500)
      .send({ error: "internal error" });
  });

  /** Every event to the inbound topic; what could not be read, whole, to its dead-letter twin. */
  async function store(
    records: OutgoingMessage[],
    unreadable: { reason: string }[],
    raw: Buffer,
  ): Promise<void> {
    if (records.length > 0) await deps.publisher.send(deps.topics.inbound, records);
    if (unreadable.length === 0) return;
    // Signed, so truly from Meta, but not a shape we know: acknowledged so Meta stops retrying,
    // and kept whole with the reason for a person (and a later release) to read.
    await deps.publisher.send(deadLetterTopic(deps.topics.inbound), [
      {
        key: "",
        value: raw,
        headers: {
          [Header.type]: "application/json",
          [Header.dlqReason]: "unreadable webhook",
          [Header.dlqError]: readableReasons(unreadable),
          [Header.dlqAt]: now().toISOString(),
        },
      },
    ]);
  }

  app.get("/webhook", async (request, reply) => {
    const query = request.query as Record<string, string | undefined>;
    const token = Buffer.from(query["hub.verify_token"] ?? "");
    const expected = Buffer.from(deps.verifyToken);
    const tokenOk = token.length === expected.length && timingSafeEqual(token, expected);
    if (query["hub.mode"] === "subscribe" && tokenOk && query["hub.challenge"] !== undefined) {
      requests.inc({ outcome: "verify_ok", reason: "" });
      return reply.code(200).type("text/plain").send(query["hub.challenge"]);
    }
    requests.inc({ outcome: "verify_refused", reason: "" });
    return reply.code(403).send({ error: "verification refused" });
  });

  // A request without a well-formed signature is refused before its body is read, and its
  // connection closed: an unsigned sender never gets up to WEBHOOK_BODY_LIMIT_BYTES buffered.
  const refuseUnsigned = async (request: FastifyRequest, reply: FastifyReply) => {
    const problem = signatureHeaderProblem(request.headers["x-hub-signature-256"] as string | undefined);
    if (!problem) return;
    requests.inc({ outcome: "bad_signature", reason: problem });
    return reply.code(401).header("connection", "close").send({ error: "invalid signature" });
  };

  app.post("/webhook", { onRequest: refuseUnsigned }, async (request, reply) => {
    const stopTimer = ackLatency.startTimer();
    try {
      return await withSpan(
        "@taituri/ingress",
        "POST /webhook",
        { kind: SpanKind.SERVER, attributes: WEBHOOK_SPAN, parent: callerContext(request.headers) },
        async (span) => {
          const answer = await webhook(span);
          if (span.isRecording()) {
            span.setAttribute("http.response.status_code", reply.statusCode);
            if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
          }
          return answer;
        },
      );
    } finally {
      stopTimer();
    }

    async function webhook(span: Span) {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const signature = checkSignature(
        raw,
        request.headers["x-hub-signature-256"] as string | undefined,
        deps.appSecrets,
      );
      span.setAttribute("webhook.signature", signature);
      if (signature !== "valid") {
        requests.inc({ outcome: "bad_signature", reason: signature });
        // No detail: a caller without the secret learns nothing about what we expected.
        return reply.code(401).send({ error: "invalid signature" });
      }
      let json: unknown;
      try {
        json = JSON.parse(raw.toString("utf8"));
      } catch {
        requests.inc({ outcome: "bad_json", reason: "" });
        return reply.code(400).send({ error: "body is not JSON" });
      }
      const { events: readable, unreadable } = normalise(json, now());
      // Each event on its own: one that cannot be a record is dead-lettered, the rest stored.
      const all: inbound.InboundEvent[] = [];
      const parsed: inbound.InboundEvent[] = [];
      const records: OutgoingMessage[] = [];
      for (const event of readable) {
        const record = recordOf(event);
        if (typeof record === "string") {
          unreadable.push({ reason: `event ${event.eventId}: ${record}` });
          continue;
        }
        all.push(event);
        if (recent.has(event.eventId)) continue;
        parsed.push(event);
        records.push(record);
      }
      span.setAttribute("webhook.events", parsed.length);
      // Pseudonyms only: an operator finds the shopper's webhook by the hash of their number.
      // Hashed only for a span that is kept: most are not sampled, and this is the hot path.
      if (span.isRecording()) {
        const shoppers = new Set(
          parsed.map((e) => String(conversationAttributes(e.conversationId)["shopper.id"])),
        );
        if (shoppers.size === 1) span.setAttribute("shopper.id", [...shoppers][0] ?? "");
        else if (shoppers.size > 1) span.setAttribute("shopper.id", [...shoppers]);
      }
      if (parsed.length === 0 && all.length > 0 && unreadable.length === 0) {
        requests.inc({ outcome: "duplicate", reason: "" });
        return reply.code(200).send({ status: "ok" });
      }
      try {
        await withTimeout(deps.publishTimeoutMs, () => store(records, unreadable, raw));
      } catch (error) {
        const reason = unavailableReason(error);
        requests.inc({ outcome: "unavailable", reason });
        // One line, no stack: while Kafka is away every delivery lands here, and the stack of
        // the same producer error on each would bury everything else.
        deps.logger.error(
          { reason, error: errorLine(error) },
          "could not store webhook events; answering 503 so Meta retries",
        );
        return reply.code(503).send({ error: "temporarily unavailable" });
      }
      for (const event of parsed) recent.add(event.eventId);
      for (const event of parsed) {
        const kind =
          event.payload?.$case === "message"
            ? `message.${event.payload.value.content?.$case ?? "none"}`
            : (event.payload?.$case ?? "none");
        events.inc({ kind });
      }
      if (unreadable.length > 0) events.inc({ kind: "unreadable" }, unreadable.length);
      requests.inc({ outcome: "accepted", reason: "" });
      return reply.code(200).send({ status: "ok" });
    }
  });

  return app;
}

/**
 * The webhook's SERVER span says what an HTTP server span would (no HTTP instrumentation runs in
 * ingress: main.ts), minus the caller's address. One object for every request: an unsampled span
 * never copies it.
 */
const WEBHOOK_SPAN = {
  "http.request.method": "POST",
  "http.route": "/webhook",
  "url.path": "/webhook",
  "url.scheme": "http",
} as const;

/**
 * The caller's trace, when the request carries a W3C traceparent (Meta's do not; a test's or a
 * proxy's may); a new trace otherwise, under the sampler's ratio. Nothing inherited from the
 * listener's own context, and nothing built when there is no header to read.
 */
function callerContext(headers: IncomingHttpHeaders) {
  const traceparent = headers.traceparent;
  if (typeof traceparent !== "string") return ROOT_CONTEXT;
  const carrier: Record<string, string> = { traceparent };
  if (typeof headers.tracestate === "string") carrier.tracestate = headers.tracestate;
  return extractContext(carrier, ROOT_CONTEXT);
}

/**
 * The events of a signed body, and why any part of it could not be read. Normalising reports what
 * it cannot read rather than throwing; should it throw all the same, the body is dead-lettered
 * with the error, not answered 500: Meta would re-send it for days and it would fail each time.
 */
function normalise(json: unknown, at: Date): ParsedWebhook {
  try {
    return parseWebhook(json, at);
  } catch (error) {
    return { events: [], unreadable: [{ reason: `could not normalise the body: ${String(error)}` }] };
  }
}

/** The record of an event, or why it cannot be one (Kafka refuses a record over its size limit). */
function recordOf(event: inbound.InboundEvent): OutgoingMessage | string {
  let record: ReturnType<typeof encodeRecord>;
  try {
    record = encodeRecord(Records.inboundEvent, event);
  } catch (error) {
    return `cannot be encoded: ${String(error)}`;
  }
  if (record.value.byteLength > limits.eventBytes)
    return `${record.value.byteLength} bytes encoded, over the ${limits.eventBytes} an event may have`;
  return { key: event.conversationId, id: event.eventId, ...record };
}

class PublishTimeout extends Error {
  override readonly name = "PublishTimeout";
}

/** An error as a log line reads it: its name and message. */
function errorLine(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Why a body could not be stored, as a metric label. */
function unavailableReason(error: unknown): string {
  if (error instanceof ProducerQueueFullError) return "queue_full";
  if (error instanceof PublishTimeout) return "timeout";
  return "error";
}

/**
 * Rejects when `fn` has not settled in time. The send may still complete later; Meta's retry of a
 * webhook we answered 503 is then deduplicated downstream like any other retry.
 */
function withTimeout<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    fn(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PublishTimeout(`Kafka did not acknowledge within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// A WhatsApp message id is base64 of bytes that hold the shopper's phone number.
const WAMID = /wamid\.[A-Za-z0-9+/=_-]+/g;

/**
 * Why parts of a webhook could not be read, for the dead-letter header people read for a week: as
 * a log line would say it, message ids and numbers as their pseudonyms.
 */
export function readableReasons(unreadable: { reason: string }[]): string {
  return redact(
    unreadable
      .map((u) => u.reason)
      .join(" | ")
      .replace(WAMID, (id) => pseudonym(id)),
  ).slice(0, 2000);
}

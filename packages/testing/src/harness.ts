import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Kafka } from "kafkajs";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  at: number;
  /** The status the fake answered with. */
  status: number;
}

export interface FakeGraphApi {
  /** Base URL to use as WHATSAPP_API_URL. */
  url: string;
  requests: RecordedRequest[];
  /** Requests to POST /{phone_number_id}/messages. */
  sends(): RecordedRequest[];
  /** Requests to POST /{phone_number_id}/media (multipart uploads, body kept as text). */
  uploads(): RecordedRequest[];
  /** Makes the next `count` sends fail with this status and Meta error body. */
  failNext(count: number, status: number, error: { code: number; message: string }): void;
  /**
   * Makes every send addressed to one of these business-scoped user ids (`recipient`) fail as Meta
   * fails where a BSUID recipient is not supported: HTTP 400, error code 131062. A send that also
   * has `to` goes to the phone number, as at Meta.
   */
  refuseUserIds(userIds: Iterable<string>): void;
  close(): Promise<void>;
}

/** Who a Graph API send-message body is addressed to: `to` (a phone number), else `recipient` (a BSUID). */
export function recipientOf(body: unknown): string | undefined {
  const { to, recipient } = (body ?? {}) as { to?: unknown; recipient?: unknown };
  if (typeof to === "string" && to !== "") return to;
  if (typeof recipient === "string" && recipient !== "") return recipient;
  return undefined;
}

/** Meta's error body (`{error:{message, type, code, error_data, fbtrace_id}}`). */
const metaError = (code: number, message: string, details?: string) =>
  JSON.stringify({
    error: {
      message,
      type: "OAuthException",
      code,
      ...(details ? { error_data: { messaging_product: "whatsapp", details } } : {}),
      fbtrace_id: `fake.${randomUUID().slice(0, 8)}`,
    },
  });

/**
 * A local HTTP server answering the Cloud API's send-message endpoint the way Meta does
 * ({"messaging_product":"whatsapp","contacts":[…],"messages":[{"id":"wamid…"}]}) and recording every
 * request, so a test can assert what would have reached a shopper. A send names the shopper by
 * phone number (`to`) or business-scoped user id (`recipient`); with both, `to` wins, as at Meta.
 */
export async function startFakeGraphApi(
  options: {
    port?: number;
    host?: string;
    /** Each send Meta would take, with the wamid it is answered with (a caller's statuses name it). */
    onSend?: (phoneNumberId: string, body: unknown, wamid: string) => void;
    /**
     * Whether to keep every request in `requests` (default true). A benchmark sending tens of
     * thousands turns it off: the growing heap would cost its process major GC pauses, and that
     * process also timestamps the replies.
     */
    record?: boolean;
  } = {},
): Promise<FakeGraphApi> {
  const requests: RecordedRequest[] = [];
  const failures: { status: number; error: { code: number; message: string } }[] = [];
  const refusedUserIds = new Set<string>();
  let sequence = 0;
  const server: Server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown = text;
    try {
      body =
        text && request.headers["content-type"]?.startsWith("application/json") ? JSON.parse(text) : text;
    } catch {
      // Recorded as text: the test decides whether that is a failure.
    }
    const path = new URL(request.url ?? "/", "http://fake").pathname;
    const recorded: RecordedRequest = {
      method: request.method ?? "",
      path,
      headers: request.headers,
      body,
      at: Date.now(),
      status: 200,
    };
    if (options.record !== false) requests.push(recorded);
    response.setHeader("content-type", "application/json");
    if (request.method === "POST" && /^\/[^/]+\/messages$/.test(path)) {
      const refuse = (status: number, error: string) => {
        recorded.status = status;
        response.statusCode = status;
        response.end(error);
      };
      const failure = failures.shift();
      if (failure) return refuse(failure.status, metaError(failure.error.code, failure.error.message));
      const { to, recipient } = (body ?? {}) as { to?: unknown; recipient?: unknown };
      const byPhone = typeof to === "string" && to !== "";
      const input = recipientOf(body);
      if (input === undefined)
        return refuse(
          400,
          metaError(100, "(#100) Invalid parameter", "Neither 'to' nor 'recipient' was given."),
        );
      if (!byPhone && typeof recipient === "string" && refusedUserIds.has(recipient))
        return refuse(
          400,
          metaError(
            131062,
            "(#131062) Business-scoped User ID recipients are not supported for this message",
            "Send this message to the user's phone number instead.",
          ),
        );
      sequence += 1;
      const wamid = `wamid.fake.${sequence}`;
      options.onSend?.(path.split("/")[1] ?? "", body, wamid);
      response.end(
        JSON.stringify({
          messaging_product: "whatsapp",
          contacts: [byPhone ? { input, wa_id: input } : { input, user_id: input }],
          messages: [{ id: wamid }],
        }),
      );
      return;
    }
    if (request.method === "POST" && /^\/[^/]+\/media$/.test(path)) {
      sequence += 1;
      response.end(JSON.stringify({ id: `media.fake.${sequence}` }));
      return;
    }
    recorded.status = 404;
    response.statusCode = 404;
    response.end(metaError(100, `Unknown path ${path}`));
  });
  server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    sends: () => requests.filter((r) => r.method === "POST" && r.path.endsWith("/messages")),
    uploads: () => requests.filter((r) => r.method === "POST" && r.path.endsWith("/media")),
    failNext(count, status, error) {
      for (let i = 0; i < count; i++) failures.push({ status, error });
    },
    refuseUserIds(userIds) {
      for (const id of userIds) refusedUserIds.add(id);
    },
    close: () =>
      new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}

/** Polls `probe` until it returns a value other than undefined/null/false, or fails with `what` after the timeout. */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`,
  );
}

export interface TopicRecord {
  partition: number;
  offset: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

/**
 * Reads a topic from the beginning with a fresh consumer group until `done(records)` is true, or
 * fails after the timeout: for asserting what reached Kafka.
 */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  done: (records: TopicRecord[]) => boolean,
  timeoutMs = 20_000,
): Promise<TopicRecord[]> {
  const records: TopicRecord[] = [];
  const consumer = kafka.consumer({ groupId: `reader-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) {
          if (value !== undefined)
            headers[name] = String(Array.isArray(value) ? value[value.length - 1] : value);
        }
        records.push({
          partition,
          offset: message.offset,
          key: message.key?.toString() ?? "",
          value: message.value ?? Buffer.alloc(0),
          headers,
        });
      },
    });
    return await eventually(`records on ${topic}`, () => done(records) && records, timeoutMs);
  } finally {
    await consumer.disconnect();
  }
}

/**
 * A test run's id, for topic prefixes, database names and message ids: 8 characters, the first a
 * letter. Eight hex digits alone are all digits one run in ~43, and then every log line, span and
 * dead-letter header takes them for a phone number and prints their pseudonym in their place
 * (it-dlq-58158860 came back as it-dlq-pc5753d2cc30772e6 and failed the dead-letter test).
 */
export const runId = (): string => `r${randomUUID().slice(0, 7)}`;

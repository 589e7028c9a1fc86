import { injectContext, type Span, SpanKind, withSpan } from "@taituri/telemetry";
import { Agent, request } from "undici";

/**
 * Meta error codes that mean "not now" rather than "never": throughput (130429), pair rate to one
 * shopper (131056), temporary service trouble (131000 "something went wrong", 131016 service
 * unavailable), and the generic rate limits (4, 80007, 133016).
 */
const TRANSIENT_META_CODES = new Set([4, 130429, 131000, 131016, 131056, 80007, 133016]);

/**
 * Meta's answer to a send addressed to a business-scoped user id (`recipient`) where that is not
 * supported, e.g. some authentication templates. Permanent for that address: the message was not
 * taken, and the same request would be refused again.
 */
export const BSUID_RECIPIENT_UNSUPPORTED = 131062;

export class GraphApiError extends Error {
  override readonly name = "GraphApiError";
  readonly status: number;
  /** Meta's error.code, when the body had one. */
  readonly code: number | undefined;
  readonly transient: boolean;

  constructor(message: string, status: number, code: number | undefined) {
    super(message);
    this.status = status;
    this.code = code;
    // 408 and 429 are the client errors that mean "try again"; everything 5xx is the server's problem.
    this.transient =
      status === 0 ||
      status === 408 ||
      status === 429 ||
      status >= 500 ||
      (code !== undefined && TRANSIENT_META_CODES.has(code));
  }
}

export interface GraphApiOptions {
  baseUrl: string;
  accessToken: string;
  timeoutMs: number;
}

export interface SendResult {
  /** The wamid Meta gave the message; statuses refer to it. */
  messageId: string;
}

/** The Cloud API's send-message endpoint, POST /{phone_number_id}/messages. */
export class GraphApiClient {
  readonly #options: GraphApiOptions;
  /**
   * Keep-alive connections for sends. undici's `request` rather than `fetch` (the same library
   * under Node's fetch): a profile of ingress at 500 messages/s had a sixth of its CPU in fetch's
   * web streams and abort plumbing, which a JSON post and its JSON answer do not need.
   */
  readonly #agent = new Agent({ keepAliveTimeout: 30_000 });

  constructor(options: GraphApiOptions) {
    this.#options = options;
  }

  /** Closes the kept-alive connections (on shutdown). */
  close(): Promise<void> {
    return this.#agent.close();
  }

  async sendMessage(phoneNumberId: string, payload: Record<string, unknown>): Promise<SendResult> {
    const body = await this.#post(phoneNumberId, "messages", JSON.stringify(payload), {
      "content-type": "application/json",
    });
    const messageId = (body as { messages?: { id?: string }[] }).messages?.[0]?.id;
    if (!messageId) throw new GraphApiError("Graph API answered 2xx without a message id", 200, undefined);
    return { messageId };
  }

  /** Uploads media for a later send by id (POST /{phone_number_id}/media, multipart). */
  async uploadMedia(
    phoneNumberId: string,
    media: { bytes: Buffer; contentType: string; filename: string },
  ): Promise<string> {
    const form = new FormData();
    form.set("messaging_product", "whatsapp");
    form.set("type", media.contentType);
    form.set("file", new Blob([new Uint8Array(media.bytes)], { type: media.contentType }), media.filename);
    const body = await this.#post(phoneNumberId, "media", form, {});
    const id = (body as { id?: string }).id;
    if (!id)
      throw new GraphApiError("Graph API answered 2xx to a media upload without an id", 200, undefined);
    return id;
  }

  #post(
    phoneNumberId: string,
    edge: "messages" | "media",
    payload: string | FormData,
    headers: Record<string, string>,
  ): Promise<unknown> {
    const url = `${this.#options.baseUrl}/${encodeURIComponent(phoneNumberId)}/${edge}`;
    return withSpan(
      "@taituri/ingress",
      `POST /{phone_number_id}/${edge}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { "http.request.method": "POST", "server.address": new URL(url).host },
      },
      async (span) => {
        const allHeaders = {
          authorization: `Bearer ${this.#options.accessToken}`,
          ...headers,
          ...injectContext(),
        };
        // A timer of our own, cleared once the answer is read: AbortSignal.timeout's timer runs
        // out after every request, done or not, and builds a DOMException (a stack trace) each
        // time it does (1 % of the dispatcher's CPU at 500 messages/s, bench/README.md).
        const controller = new AbortController();
        const timer = setTimeout(
          () => controller.abort(new Error(`no answer in ${this.#options.timeoutMs} ms`)),
          this.#options.timeoutMs,
        );
        try {
          return await this.#exchange(url, payload, allHeaders, controller.signal, span);
        } finally {
          clearTimeout(timer);
        }
      },
    );
  }

  async #exchange(
    url: string,
    payload: string | FormData,
    allHeaders: Record<string, string>,
    signal: AbortSignal,
    span: Span,
  ): Promise<unknown> {
    let response: { status: number; text: () => Promise<string> };
    try {
      if (typeof payload === "string") {
        const answer = await request(url, {
          method: "POST",
          headers: allHeaders,
          body: payload,
          signal,
          dispatcher: this.#agent,
        });
        response = { status: answer.statusCode, text: () => answer.body.text() };
      } else {
        // A multipart upload (rare, large): fetch builds the form's body.
        const answer = await fetch(url, { method: "POST", headers: allHeaders, body: payload, signal });
        response = { status: answer.status, text: () => answer.text() };
      }
    } catch (error) {
      // Refused, reset or timed out: nothing says Meta did not get it, but nothing says it did.
      throw new GraphApiError(
        `Graph API unreachable: ${error instanceof Error ? error.message : String(error)}`,
        0,
        undefined,
      );
    }
    span.setAttribute("http.response.status_code", response.status);
    const text = await response.text();
    let body: { error?: { code?: number; message?: string } } = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      // A proxy's HTML error page, say: the status decides what happens next.
    }
    // fetch's `ok`: any 2xx.
    if (response.status < 200 || response.status > 299) {
      const code = body.error?.code;
      if (code !== undefined) span.setAttribute("whatsapp.error.code", code);
      throw new GraphApiError(
        `Graph API ${response.status}${code !== undefined ? ` (code ${code})` : ""}: ${body.error?.message ?? text.slice(0, 200)}`,
        response.status,
        code,
      );
    }
    return body;
  }
}

import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A 1×1 transparent PNG. */
export const TINY_PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
  "base64",
);

/** How the fake answers one request to POST /v1/images/generations. */
export type FakeReply =
  | "ok"
  | "rate_limited"
  | "quota"
  | "server_error"
  | "content_policy"
  | "bad_request"
  /** Accepts the request and never answers (until the server closes). */
  | "hang"
  /** Accepts the request and answers as "ok" once `releaseHeld` is called: a slow model. */
  | "held"
  /** 200 with a body that is not JSON. */
  | "garbage"
  /** 200, JSON, but no images in it. */
  | "no_images";

export interface FakeOpenAI {
  /** Use as OPENAI_BASE_URL. */
  baseURL: string;
  /** Every request to the images endpoint, in arrival order. */
  requests: { body: Record<string, unknown>; authorization: string; reply: FakeReply }[];
  /** Replies for the next requests, in order; after them, `fallback`. */
  script(...replies: FakeReply[]): void;
  fallback: FakeReply;
  /** Answers every "held" request waiting so far. */
  releaseHeld(): void;
  close(): Promise<void>;
}

const error = (message: string, type: string, code: string | null) => ({
  error: { message, type, param: null, code },
});

/**
 * A local HTTP server that speaks the part of the OpenAI API the openai provider uses
 * (POST /v1/images/generations, b64_json images, OpenAI's error bodies and headers), scripted per
 * request, and counting requests: each one stands for a call OpenAI could bill.
 */
export async function startFakeOpenAI(options: { port?: number } = {}): Promise<FakeOpenAI> {
  const queue: FakeReply[] = [];
  const hanging = new Set<ServerResponse>();
  const held = new Set<() => void>();
  const fake: FakeOpenAI = {
    baseURL: "",
    requests: [],
    fallback: "ok",
    script: (...replies) => {
      queue.push(...replies);
    },
    releaseHeld: () => {
      for (const answer of held) answer();
      held.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const response of hanging) response.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    let text = "";
    for await (const chunk of request) text += chunk;
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      response.writeHead(status, {
        "content-type": "application/json",
        "x-request-id": "req_fake",
        ...headers,
      });
      response.end(JSON.stringify(body));
    };
    if (request.method !== "POST" || request.url !== "/v1/images/generations")
      return json(404, error(`Unknown path ${request.url}`, "invalid_request_error", null));
    const body = JSON.parse(text || "{}") as Record<string, unknown>;
    const images = () => {
      const n = typeof body.n === "number" ? body.n : 1;
      json(200, {
        created: Math.floor(Date.now() / 1000),
        data: Array.from({ length: n }, () => ({ b64_json: TINY_PNG.toString("base64") })),
        usage: { input_tokens: 50, output_tokens: 4160 * n, total_tokens: 50 + 4160 * n },
      });
    };
    const reply = queue.shift() ?? fake.fallback;
    fake.requests.push({ body, authorization: request.headers.authorization ?? "", reply });
    switch (reply) {
      case "ok":
        return images();
      case "rate_limited":
        return json(
          429,
          error("Rate limit reached for images per minute.", "requests", "rate_limit_exceeded"),
          {
            "retry-after-ms": "20",
          },
        );
      case "quota":
        return json(
          429,
          error("You exceeded your current quota.", "insufficient_quota", "insufficient_quota"),
        );
      case "server_error":
        return json(500, error("The server had an error processing your request.", "server_error", null));
      case "content_policy":
        return json(
          400,
          error(
            "Your request was rejected as a result of our safety system.",
            "image_generation_user_error",
            "moderation_blocked",
          ),
        );
      case "bad_request":
        return json(400, error("Invalid size.", "invalid_request_error", "invalid_value"));
      case "hang":
        hanging.add(response);
        response.on("close", () => hanging.delete(response));
        return;
      case "held":
        hanging.add(response);
        response.on("close", () => hanging.delete(response));
        held.add(() => {
          hanging.delete(response);
          images();
        });
        return;
      case "garbage":
        response.writeHead(200, { "content-type": "application/json" });
        response.end('{"data": [ {"b64_json": "iVBOR');
        return;
      case "no_images":
        return json(200, { created: 1, data: [] });
    }
  };
  server.listen(options.port ?? 0, "127.0.0.1");
  await once(server, "listening");
  fake.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return fake;
}

import type { ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import fastifyMultipart from "@fastify/multipart";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { type LocalImages, openAIError, parseImagesRequest } from "./images.ts";
import { MetaErrors } from "./meta-errors.ts";
import { type SimulatorCore, SimulatorInputError } from "./simulator.ts";

/** The media types Meta takes on upload, each with its size limit (Cloud API media reference). */
const UPLOAD_LIMITS: Record<string, number> = {
  "image/jpeg": 5 * 1024 * 1024,
  "image/png": 5 * 1024 * 1024,
  "image/webp": 500 * 1024,
  "audio/aac": 16 * 1024 * 1024,
  "audio/amr": 16 * 1024 * 1024,
  "audio/mpeg": 16 * 1024 * 1024,
  "audio/mp4": 16 * 1024 * 1024,
  "audio/ogg": 16 * 1024 * 1024,
  "video/mp4": 16 * 1024 * 1024,
  "video/3gpp": 16 * 1024 * 1024,
  "application/pdf": 100 * 1024 * 1024,
  "text/plain": 100 * 1024 * 1024,
};
const MAX_UPLOAD = Math.max(...Object.values(UPLOAD_LIMITS));

export interface ServerOptions {
  core: SimulatorCore;
  images: LocalImages;
  /** The bearer the Graph API side expects; any bearer when undefined. */
  accessToken: string | undefined;
  /** The key the images endpoint expects (OPENAI_API_KEY of the generation service). */
  openaiApiKey: string;
  /** The Graph API's version path, e.g. v23.0. */
  graphVersion: string;
  /** The simulator's own base URL, for media download URLs. */
  baseUrl: () => string;
}

/** The trace id of a W3C traceparent header, when it carries one. */
const traceIdOf = (header: unknown) =>
  typeof header === "string"
    ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(header)?.[1]
    : undefined;

/**
 * The simulator's HTTP server: the Graph API the dispatcher calls (under /vNN.N), media downloads
 * like Meta's CDN, the OpenAI-compatible images endpoint (/v1), and the UI with its API (/sim).
 */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const { core } = options;
  const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024 });
  await app.register(fastifyMultipart, { limits: { fileSize: MAX_UPLOAD, files: 1, fields: 10 } });
  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL("../public", import.meta.url)),
    prefix: "/",
    // The UI changes while someone works on it; a stale module would be confusing, and this is local.
    cacheControl: false,
  });
  // A POST with no body (the UI's "read", "jump") is fine even when it says it is JSON.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) => {
    if (body === "") return done(null, undefined);
    try {
      done(null, JSON.parse(String(body)));
    } catch (error) {
      done(Object.assign(error as Error, { statusCode: 400 }), undefined);
    }
  });
  const hanging = new Set<ServerResponse>();
  // preClose, not onClose: closing waits for open connections, and an event stream never ends by
  // itself (a browser with the UI open kept `close()` waiting forever).
  app.addHook("preClose", async () => {
    for (const response of hanging) response.destroy();
  });

  // --- Graph API -----------------------------------------------------------------------------
  const graph = `/${options.graphVersion}`;
  const authorized = (request: FastifyRequest) => {
    const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? "");
    return match !== null && (options.accessToken === undefined || match[1] === options.accessToken);
  };
  /** Authorisation and the ack-delay toggle, before every Graph API answer. */
  const graphCall = async (
    request: FastifyRequest,
    reply: FastifyReply,
    what: string,
    answer: (traceId: string | undefined) => Promise<{ status: number; body: unknown }>,
  ) => {
    const traceId = traceIdOf(request.headers.traceparent);
    if (core.toggles.ackDelayMs > 0) await sleep(core.toggles.ackDelayMs);
    const result = authorized(request)
      ? await answer(traceId)
      : core.graphError(MetaErrors.invalidAccessToken(), `${what} without a valid access token`, traceId);
    if (!Buffer.isBuffer(result.body)) reply.header("content-type", "application/json");
    return reply.code(result.status).send(result.body);
  };

  app.post<{ Params: { phoneNumberId: string } }>(`${graph}/:phoneNumberId/messages`, (request, reply) =>
    graphCall(request, reply, "send", (traceId) =>
      core.sendFromBot(request.params.phoneNumberId, request.body, traceId),
    ),
  );

  app.post<{ Params: { phoneNumberId: string } }>(`${graph}/:phoneNumberId/media`, (request, reply) =>
    graphCall(request, reply, "media upload", async (traceId) => {
      const { phoneNumberId } = request.params;
      if (!core.business(phoneNumberId))
        return core.graphError(MetaErrors.unknownObject(phoneNumberId, "post"), "media upload", traceId);
      const invalid = (details: string) =>
        core.graphError(MetaErrors.invalidParameter(details), "media upload", traceId);
      if (!request.isMultipart()) return invalid("The request must be multipart/form-data.");
      const fields: Record<string, string> = {};
      let file: { bytes: Buffer; mimeType: string; truncated: boolean } | undefined;
      for await (const part of request.parts()) {
        if (part.type === "file") {
          const bytes = await part.toBuffer();
          file = { bytes, mimeType: part.mimetype, truncated: part.file.truncated };
        } else if (typeof part.value === "string") fields[part.fieldname] = part.value;
      }
      if (fields.messaging_product !== "whatsapp")
        return invalid("The parameter messaging_product is required.");
      if (!file) return invalid("The parameter file is required.");
      const mimeType = (fields.type ?? file.mimeType).split(";")[0]?.trim() ?? "";
      const limit = UPLOAD_LIMITS[mimeType];
      if (limit === undefined)
        return invalid(
          `Param file must be a file with one of the following types: ${Object.keys(UPLOAD_LIMITS).join(", ")}. Received file of type '${mimeType}'.`,
        );
      if (file.truncated || file.bytes.length > limit)
        return invalid(`Param file must be at most ${limit} bytes for ${mimeType}.`);
      const media = core.storeMedia(file.bytes, mimeType);
      core.log(
        "graph",
        `← dispatcher: media upload ${mimeType}, ${file.bytes.length} bytes: 200 id ${media.id}`,
      );
      return { status: 200, body: { id: media.id } };
    }),
  );

  app.get<{ Params: { mediaId: string } }>(`${graph}/:mediaId`, (request, reply) =>
    graphCall(request, reply, "media lookup", async (traceId) => {
      const media = core.media(request.params.mediaId);
      if (!media)
        return core.graphError(
          MetaErrors.unknownObject(request.params.mediaId, "get"),
          "media lookup",
          traceId,
        );
      return {
        status: 200,
        body: {
          messaging_product: "whatsapp",
          url: `${options.baseUrl()}/whatsapp_business/attachments/?mid=${media.id}`,
          mime_type: media.mimeType,
          sha256: media.sha256,
          file_size: media.bytes.length,
          id: media.id,
        },
      };
    }),
  );

  app.delete<{ Params: { mediaId: string } }>(`${graph}/:mediaId`, (request, reply) =>
    graphCall(request, reply, "media delete", async (traceId) =>
      core.deleteMedia(request.params.mediaId)
        ? { status: 200, body: { success: true } }
        : core.graphError(
            MetaErrors.unknownObject(request.params.mediaId, "delete"),
            "media delete",
            traceId,
          ),
    ),
  );

  // The media URL Meta's lookup gives: downloaded with the same bearer token.
  app.get<{ Querystring: { mid?: string } }>("/whatsapp_business/attachments/", (request, reply) =>
    graphCall(request, reply, "media download", async (traceId) => {
      const media = core.media(request.query.mid ?? "");
      if (!media)
        return core.graphError(
          MetaErrors.unknownObject(request.query.mid ?? "", "get"),
          "media download",
          traceId,
        );
      reply.header("content-type", media.mimeType);
      return { status: 200, body: media.bytes };
    }),
  );

  // --- OpenAI-compatible images endpoint ------------------------------------------------------
  app.post("/v1/images/generations", async (request, reply) => {
    const json = (status: number, body: unknown) =>
      reply
        .code(status)
        .header("content-type", "application/json")
        .header("x-request-id", `req_sim_${Date.now()}`)
        .send(body);
    const key = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? "")?.[1];
    if (key !== options.openaiApiKey) {
      core.log("image", "images request with a wrong API key: 401");
      return json(
        401,
        openAIError(
          "Incorrect API key provided. You can find your API key in the simulator's options.",
          "invalid_request_error",
          "invalid_api_key",
        ),
      );
    }
    const parsed = parseImagesRequest(request.body);
    if (typeof parsed === "string") {
      core.log("image", `images request refused: 400 ${parsed}`);
      return json(400, openAIError(parsed, "invalid_request_error"));
    }
    const mode = core.toggles.image;
    if (mode === "fail") {
      core.log("image", `images request for ${parsed.n} designs: 500 (image provider toggle: fail)`);
      return json(
        500,
        openAIError(
          "The server had an error while processing your request. Sorry about that!",
          "server_error",
        ),
      );
    }
    if (mode === "timeout") {
      core.log("image", `images request for ${parsed.n} designs: no answer (image provider toggle: timeout)`);
      reply.hijack();
      hanging.add(reply.raw);
      reply.raw.on("close", () => {
        hanging.delete(reply.raw);
        core.log("image", "the caller gave up on the unanswered images request");
      });
      return reply;
    }
    const started = performance.now();
    const rendered = await options.images.render(parsed);
    if ("refused" in rendered) {
      core.log("image", `images request refused: 400 ${rendered.refused}`);
      return json(400, openAIError(rendered.refused, "invalid_request_error"));
    }
    core.log(
      "image",
      `images request: ${parsed.n} designs of ${parsed.size}×${parsed.size} drawn in ${Math.round(performance.now() - started)} ms`,
    );
    return json(200, {
      created: Math.floor(Date.now() / 1000),
      data: rendered.b64.map((b64) => ({ b64_json: b64 })),
      usage: {
        input_tokens: 0,
        output_tokens: 0,
        total_tokens: 0,
        input_tokens_details: { text_tokens: 0, image_tokens: 0 },
      },
    });
  });

  // --- The UI's API ---------------------------------------------------------------------------
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof SimulatorInputError) return reply.code(error.status).send({ error: error.message });
    const status = (error as { statusCode?: number }).statusCode;
    const message = error instanceof Error ? error.message : String(error);
    if (status && status >= 400 && status < 500) return reply.code(status).send({ error: message });
    core.options.logger?.error({ err: error }, "simulator request failed");
    return reply.code(500).send({ error: message });
  });

  app.get("/sim/api/state", async () => core.state());
  app.post("/sim/api/shoppers", async (request) => core.createShopper(request.body));
  app.post<{ Params: { id: string } }>("/sim/api/shoppers/:id/messages", async (request) =>
    core.sendFromShopper(request.params.id, request.body),
  );
  app.post<{ Params: { id: string } }>("/sim/api/shoppers/:id/read", async (request) =>
    core.markRead(request.params.id),
  );
  app.put("/sim/api/toggles", async (request) => core.setToggles(request.body));
  app.get("/sim/api/clock", async () => ({ offsetMs: core.clockOffsetMs }));
  app.post("/sim/api/clock/jump", async (request) =>
    core.jumpClock((request.body as { ms?: unknown } | null)?.ms),
  );
  app.get<{ Params: { id: string } }>("/sim/media/:id", async (request, reply) => {
    const media = core.media(request.params.id);
    if (!media) return reply.code(404).send({ error: `no media ${request.params.id}` });
    return reply
      .header("content-type", media.mimeType)
      .header("cache-control", "max-age=3600")
      .send(media.bytes);
  });

  app.get("/sim/api/events", (request, reply) => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    raw.write(": connected\n\n");
    const listener = (event: { event: string; data: unknown }) => {
      raw.write(`event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
    };
    core.events.on("event", listener);
    // A comment now and then keeps proxies and the browser from closing an idle stream.
    const heartbeat = setInterval(() => raw.write(": ping\n\n"), 15_000);
    hanging.add(raw);
    request.raw.on("close", () => {
      clearInterval(heartbeat);
      core.events.off("event", listener);
      hanging.delete(raw);
    });
  });

  app.setNotFoundHandler((request, reply) => {
    if (request.url.startsWith(`${graph}/`))
      return reply
        .code(400)
        .send(
          MetaErrors.unknownObject(request.url.slice(graph.length + 1).split(/[/?]/)[0] ?? "", "get").body,
        );
    return reply.code(404).send({ error: `no route ${request.method} ${request.url}` });
  });

  return app;
}

import OpenAI from "openai";
import { buildPrompt, type DesignBrief, type PromptTemplates } from "../domain/prompt.ts";
import type { CallOutcome } from "../domain/round.ts";
import { type CallResult, type GeneratedImage, type ImageProvider, sniffImage } from "./provider.ts";

export interface OpenAIProviderOptions {
  apiKey: string;
  /** e.g. https://api.openai.com/v1 (the SDK's default when undefined). */
  baseURL?: string;
  model: string;
  size: string;
  quality: string;
  timeoutMs: number;
  templates: PromptTemplates;
}

/** Error codes OpenAI answers a 400 with when its safety system refuses the prompt. */
const CONTENT_POLICY_CODES = new Set(["content_policy_violation", "moderation_blocked"]);
/** Errors that mean the request never left this machine or never reached a server. */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * The images API through the official SDK, one HTTP request per call: the SDK's own retries are
 * off (maxRetries 0) because it would retry timeouts and 5xx, which may already have been billed.
 */
export function createOpenAIProvider(options: OpenAIProviderOptions): ImageProvider {
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL,
    maxRetries: 0,
    timeout: options.timeoutMs,
  });
  return {
    name: "openai",
    model: options.model,
    size: options.size,
    quality: options.quality,
    async generate(brief: DesignBrief, count: number, signal?: AbortSignal): Promise<CallResult> {
      let response: OpenAI.ImagesResponse;
      try {
        response = await client.images.generate(
          {
            model: options.model,
            prompt: buildPrompt(options.templates, brief),
            n: count,
            size: options.size as OpenAI.ImageGenerateParams["size"],
            quality: options.quality as OpenAI.ImageGenerateParams["quality"],
            // Ties the request to the round in OpenAI's abuse monitoring, without the shopper's number.
            user: brief.roundId.slice(0, 64),
          },
          { signal },
        );
      } catch (error) {
        // Our shutdown's abort: the SDK reports it as a user abort, which would read as a timeout.
        if (signal?.aborted) return { outcome: "cancelled", detail: "cancelled while waiting for OpenAI" };
        return classifyError(error);
      }
      return readImages(response);
    },
  };
}

function readImages(response: unknown): CallResult {
  const data = (response as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length === 0)
    return { outcome: "malformed", detail: "response has no data array of images" };
  const images: GeneratedImage[] = [];
  for (const item of data) {
    const b64 = (item as { b64_json?: unknown } | null)?.b64_json;
    if (typeof b64 !== "string" || b64.length === 0)
      return { outcome: "malformed", detail: "an image has no b64_json" };
    const bytes = Buffer.from(b64, "base64");
    const kind = sniffImage(bytes);
    if (!kind) return { outcome: "malformed", detail: "b64_json is not a PNG, JPEG or WebP image" };
    images.push({ bytes, ...kind });
  }
  return { outcome: "ok", images };
}

/** Maps what the SDK threw to an outcome; see domain/round.ts for which outcomes may be billed. */
export function classifyError(error: unknown): Exclude<CallResult, { outcome: "ok" }> {
  const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const result = (outcome: Exclude<CallOutcome, "ok">, retryAfterMs?: number) => ({
    outcome,
    detail,
    retryAfterMs,
  });
  if (error instanceof OpenAI.APIConnectionTimeoutError || error instanceof OpenAI.APIUserAbortError)
    return result("timeout");
  if (error instanceof OpenAI.APIConnectionError)
    return result(NOT_SENT_CODES.has(causeCode(error) ?? "") ? "unreachable" : "server_error");
  if (error instanceof OpenAI.APIError && typeof error.status === "number") {
    if (error.status === 429)
      return error.code === "insufficient_quota"
        ? result("quota")
        : result("rate_limited", retryAfterMs(error.headers));
    if (error.status === 400 && CONTENT_POLICY_CODES.has(error.code ?? "")) return result("content_policy");
    if (error.status === 408) return result("timeout");
    if (error.status >= 500) return result("server_error");
    return result("bad_request");
  }
  // A 2xx the SDK could not parse (not JSON, cut short).
  return result("malformed");
}

function causeCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("E")) return code;
  }
  return undefined;
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get("retry-after-ms"));
  if (Number.isFinite(ms) && ms > 0) return ms;
  const seconds = Number(headers?.get("retry-after"));
  if (Number.isFinite(seconds) && seconds > 0) return seconds * 1000;
  return undefined;
}

import { readFile } from "node:fs/promises";
import { createLocalProvider } from "@taituri/generation-service/local";
import {
  briefFromPrompt,
  type PromptTemplates,
  parsePromptTemplates,
} from "@taituri/generation-service/prompt";

/** OpenAI's error body: `{ error: { message, type, param, code } }`. */
export const openAIError = (message: string, type: string, code: string | null = null) => ({
  error: { message, type, param: null, code },
});

export interface ImagesRequest {
  prompt: string;
  n: number;
  /** Width and height of the square designs. */
  size: number;
  /** The round id the generation service sends as `user`: seeds the designs, as the round id does locally. */
  user: string;
}

/** Reads an images/generations body as OpenAI checks it; a string is the 400's message. */
export function parseImagesRequest(body: unknown): ImagesRequest | string {
  if (typeof body !== "object" || body === null) return "We could not parse the JSON body of your request.";
  const o = body as Record<string, unknown>;
  if (typeof o.prompt !== "string" || o.prompt.trim() === "") return "Missing required parameter: 'prompt'.";
  const n = o.n ?? 1;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 10)
    return `Invalid 'n': integer below minimum value or above maximum value (1 to 10), got ${String(n)}.`;
  const size = o.size ?? "auto";
  const match = typeof size === "string" ? /^(\d+)x(\d+)$/.exec(size) : null;
  if (size !== "auto" && !match)
    return `Invalid value: '${String(size)}'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.`;
  // The local renderer draws squares: the shorter side of what was asked.
  const side = match ? Math.min(Number(match[1]), Number(match[2])) : 1024;
  return {
    prompt: o.prompt,
    n,
    size: Math.min(Math.max(side, 64), 2048),
    user: typeof o.user === "string" ? o.user : "",
  };
}

/**
 * The designs for an images request, drawn by the generation service's own local renderer from
 * the brief the prompt was built from, as OpenAI's b64_json images.
 */
export class LocalImages {
  readonly #templates: Promise<PromptTemplates>;
  /** One renderer per size: each loads its fonts once. */
  readonly #providers = new Map<number, ReturnType<typeof createLocalProvider>>();

  constructor(promptsFile: string) {
    this.#templates = readFile(promptsFile, "utf8").then((text) => parsePromptTemplates(JSON.parse(text)));
  }

  async render(request: ImagesRequest): Promise<{ b64: string[] } | { refused: string }> {
    const templates = await this.#templates;
    const brief = briefFromPrompt(templates, request.prompt, request.user || request.prompt.slice(0, 64));
    if (!brief)
      return { refused: "the prompt was not built from the generation service's templates (PROMPTS_FILE)" };
    let provider = this.#providers.get(request.size);
    if (!provider) {
      provider = createLocalProvider({ templates, size: request.size });
      this.#providers.set(request.size, provider);
    }
    const result = await provider.generate(brief, request.n);
    if (result.outcome !== "ok") return { refused: result.detail };
    return { b64: result.images.map((image) => image.bytes.toString("base64")) };
  }
}

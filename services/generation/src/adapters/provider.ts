import type { DesignBrief } from "../domain/prompt.ts";
import type { CallOutcome } from "../domain/round.ts";

export interface GeneratedImage {
  bytes: Buffer;
  contentType: string;
  /** File name extension, for the stored file's name. */
  extension: string;
}

/** How one provider call ended: images, or a classified failure (never a thrown error). */
export type CallResult =
  | { outcome: "ok"; images: GeneratedImage[] }
  | { outcome: Exclude<CallOutcome, "ok">; detail: string; retryAfterMs?: number };

/**
 * An image provider, chosen by IMAGE_PROVIDER. `generate` makes exactly one call and never
 * retries: the round worker decides retries from the outcome, so every call is counted and priced
 * in one place (the cost ledger). Once `signal` aborts (a shutdown past its drain deadline), it
 * stops waiting and answers `cancelled`.
 */
export interface ImageProvider {
  readonly name: string;
  readonly model: string;
  readonly size: string;
  readonly quality: string;
  generate(brief: DesignBrief, count: number, signal?: AbortSignal): Promise<CallResult>;
}

/** File signatures of the formats a provider may answer with. */
export function sniffImage(bytes: Buffer): { contentType: string; extension: string } | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return { contentType: "image/png", extension: "png" };
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff)
    return { contentType: "image/jpeg", extension: "jpg" };
  if (
    bytes.subarray(0, 4).toString("latin1") === "RIFF" &&
    bytes.subarray(8, 12).toString("latin1") === "WEBP"
  )
    return { contentType: "image/webp", extension: "webp" };
  return undefined;
}

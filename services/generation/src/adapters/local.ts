import { setTimeout as sleep } from "node:timers/promises";
import { Resvg } from "@resvg/resvg-js";
import { designSvg } from "../domain/design.ts";
import { captionFor, type DesignBrief, type PromptTemplates } from "../domain/prompt.ts";
import { loadFonts } from "./fonts.ts";
import type { CallResult, ImageProvider } from "./provider.ts";

export interface LocalProviderOptions {
  templates: PromptTemplates;
  /** Width and height of each PNG. */
  size: number;
  /** Added before rendering: a stand-in for a slow model in demos and crash tests. */
  delayMs?: number;
}

/**
 * Renders the designs offline with resvg (Rust, via napi): an SVG per design from
 * domain/design.ts, rasterised to PNG with the fonts of adapters/fonts.ts. System fonts are never
 * loaded, so the output is the same on any machine (and rendering does not scan font directories).
 * The fonts are found and parsed once per process; resvg's Node binding takes fonts only as paths
 * (no buffers), so each render loads those files again, about a millisecond for the four.
 */
export function createLocalProvider(options: LocalProviderOptions): ImageProvider {
  const fonts = loadFonts();
  const renderOptions = {
    font: { loadSystemFonts: false, fontFiles: fonts.files, defaultFontFamily: fonts.typography.sans.family },
  };
  return {
    name: "local",
    model: "resvg",
    size: `${options.size}x${options.size}`,
    quality: "standard",
    async generate(brief: DesignBrief, count: number, signal?: AbortSignal): Promise<CallResult> {
      if (signal?.aborted) return { outcome: "cancelled", detail: "cancelled before rendering" };
      if (options.delayMs) {
        try {
          await sleep(options.delayMs, undefined, { signal });
        } catch (error) {
          if (signal?.aborted) return { outcome: "cancelled", detail: "cancelled while rendering" };
          throw error;
        }
      }
      const images = [];
      for (let index = 1; index <= count; index++) {
        const svg = designSvg(
          {
            roundId: brief.roundId,
            index,
            name: brief.recipient,
            caption: captionFor(options.templates, brief.theme),
            theme: brief.theme,
            style: brief.style,
            size: options.size,
          },
          fonts.typography,
        );
        const bytes = new Resvg(svg, renderOptions).render().asPng();
        images.push({ bytes: Buffer.from(bytes), contentType: "image/png", extension: "png" });
      }
      return { outcome: "ok", images };
    },
  };
}

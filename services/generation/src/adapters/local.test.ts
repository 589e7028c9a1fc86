import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Resvg } from "@resvg/resvg-js";
import { type DesignBrief, parsePromptTemplates } from "../domain/prompt.ts";
import { loadFonts } from "./fonts.ts";
import { createLocalProvider } from "./local.ts";
import { sniffImage } from "./provider.ts";

const templates = parsePromptTemplates(
  JSON.parse(readFileSync(new URL("../../data/prompts.json", import.meta.url), "utf8")),
);
const provider = createLocalProvider({ templates, size: 256 });
const brief: DesignBrief = {
  roundId: "PN:1/j1/r1",
  recipient: "Zoë",
  theme: "birthday",
  style: "watercolor",
  productId: "mug-11oz",
};

async function render(overrides: Partial<DesignBrief> = {}): Promise<Buffer[]> {
  const result = await provider.generate({ ...brief, ...overrides }, 3);
  assert.equal(result.outcome, "ok");
  return result.outcome === "ok" ? result.images.map((image) => image.bytes) : [];
}

/** A text-only SVG drawn with the renderer's fonts, system fonts off: its pixels and how many have ink. */
function draw(family: string, weight: number, text: string): { pixels: string; ink: number } {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="80"><text x="10" y="60" font-family="${family}" font-weight="${weight}" font-size="48">${text}</text></svg>`;
  const { files } = loadFonts();
  const pixels = new Resvg(svg, { font: { loadSystemFonts: false, fontFiles: files } }).render().pixels;
  let ink = 0;
  for (let i = 3; i < pixels.length; i += 4) if ((pixels[i] ?? 0) > 0) ink++;
  return { pixels: pixels.toString("base64"), ink };
}

test("the fonts come from their npm packages, parsed once per process", () => {
  const fonts = loadFonts();
  assert.equal(loadFonts(), fonts);
  assert.equal(fonts.files.length, 4);
  for (const file of fonts.files) assert.match(file, /node_modules\/@expo-google-fonts\/[^/]+\/.+\.ttf$/);
});

test("resvg draws every face by the family name the design asks for, accents included", () => {
  const { typography } = loadFonts();
  const drawings = new Set<string>();
  for (const face of [typography.script, typography.serif, typography.retro, typography.sans]) {
    for (const c of "ëéŁåøçğřß") assert.ok(face.covers(c.codePointAt(0) ?? 0), `${face.family} lacks ${c}`);
    const drawn = draw(face.family, face.weight, "Zoë José Łukasz");
    assert.ok(drawn.ink > 500, face.family);
    drawings.add(drawn.pixels);
  }
  // An unknown family falls back to a loaded font: four different drawings mean four matched names.
  assert.equal(drawings.size, 4);
});

test("a round renders three different PNGs of the configured size", async () => {
  const images = await render();
  assert.equal(images.length, 3);
  assert.equal(new Set(images.map((b) => b.toString("base64"))).size, 3);
  for (const bytes of images) {
    assert.equal(sniffImage(bytes)?.contentType, "image/png");
    assert.equal(bytes.readUInt32BE(16), 256);
    assert.equal(bytes.readUInt32BE(20), 256);
  }
});

test("the same brief renders the same bytes, whatever the style", async () => {
  for (const style of ["watercolor", "minimal", "retro"]) {
    assert.deepEqual(await render({ style }), await render({ style }), style);
  }
});

test("accents are drawn; characters no font has are left out, never drawn as boxes", async () => {
  const [zoe] = await render({ recipient: "Zoe" });
  const [zoeDiaeresis] = await render({ recipient: "Zoë" });
  assert.notDeepEqual(zoeDiaeresis, zoe);
  assert.deepEqual(await render({ recipient: "Ana 🎂" }), await render({ recipient: "Ana" }));
  // A name in a script none of the fonts has: the caption alone, as for an empty name.
  assert.deepEqual(await render({ recipient: "李娜" }), await render({ recipient: "" }));
  assert.notDeepEqual(await render({ recipient: "李娜" }), await render({ recipient: "Ana" }));
});

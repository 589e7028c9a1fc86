import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as fontkit from "fontkit";
import type { Face, Typography } from "../domain/design.ts";

/**
 * The typefaces of the local renderer: TrueType files of Google Fonts families as the
 * @expo-google-fonts packages ship them (fonts under the SIL Open Font License 1.1, see each
 * package's LICENSE_FONT). TrueType because resvg reads TTF/OTF, not the WOFF2 most web-font
 * packages carry. `family` is the name resvg matches: the font's typographic family.
 */
const FACES: Record<keyof Typography, { file: string; family: string }> = {
  script: {
    file: "@expo-google-fonts/dancing-script/700Bold/DancingScript_700Bold.ttf",
    family: "Dancing Script",
  },
  serif: {
    file: "@expo-google-fonts/playfair-display/700Bold/PlayfairDisplay_700Bold.ttf",
    family: "Playfair Display",
  },
  retro: { file: "@expo-google-fonts/pacifico/400Regular/Pacifico_400Regular.ttf", family: "Pacifico" },
  sans: { file: "@expo-google-fonts/noto-sans/600SemiBold/NotoSans_600SemiBold.ttf", family: "Noto Sans" },
};

export interface LoadedFonts {
  typography: Typography;
  /** The same fonts' paths, for resvg's `fontFiles`. */
  files: string[];
}

function loadFace({ file: specifier, family }: { file: string; family: string }): {
  face: Face;
  file: string;
} {
  let file: string;
  try {
    file = fileURLToPath(import.meta.resolve(specifier));
  } catch (error) {
    throw new Error(`font ${specifier} is not installed (a dependency of the generation service): ${error}`);
  }
  const font = fontkit.create(readFileSync(file));
  if ("fonts" in font) throw new Error(`font ${specifier} is a collection; the renderer expects one face`);
  const found = font.getName("preferredFamily", "en") ?? font.familyName;
  if (found !== family) throw new Error(`font ${specifier} is the family "${found}", expected "${family}"`);
  const em = font.unitsPerEm;
  const widths = new Map<string, number>();
  return {
    file,
    face: {
      family,
      weight: font["OS/2"].usWeightClass,
      covers: (codePoint) => font.hasGlyphForCodePoint(codePoint),
      width(text) {
        let width = widths.get(text);
        if (width === undefined) {
          width = font.layout(text).advanceWidth / em;
          // Designs measure the same few lines over and over (the caption of each theme).
          if (widths.size < 1000) widths.set(text, width);
        }
        return width;
      },
      ascent: font.ascent / em,
      descent: -font.descent / em,
      capHeight: font.capHeight / em,
    },
  };
}

let loaded: LoadedFonts | undefined;

/**
 * The renderer's fonts, read and parsed once per process. Throws when a font package is missing or
 * holds another family than expected, so a broken install fails at start-up, not as blank designs.
 */
export function loadFonts(): LoadedFonts {
  if (loaded) return loaded;
  const script = loadFace(FACES.script);
  const serif = loadFace(FACES.serif);
  const retro = loadFace(FACES.retro);
  const sans = loadFace(FACES.sans);
  loaded = {
    typography: { script: script.face, serif: serif.face, retro: retro.face, sans: sans.face },
    files: [script.file, serif.file, retro.file, sans.file],
  };
  return loaded;
}

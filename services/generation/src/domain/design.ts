import { drawable, GLYPHS } from "./glyphs.ts";

export interface DesignInput {
  /** The round id and the design's index seed every choice, so a round always renders the same. */
  roundId: string;
  index: number;
  name: string;
  caption: string;
  theme: string;
  style: string;
  /** Width and height in pixels (square). */
  size: number;
}

/** A small deterministic PRNG (mulberry32) seeded from a string (FNV-1a). */
export function seededRandom(seed: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Base hues per theme (degrees); a design rotates them by its own offset. */
const THEME_HUES: Record<string, number[]> = {
  birthday: [45, 200, 330, 120],
  love: [350, 330, 10, 300],
  thanks: [30, 90, 15, 50],
  congrats: [50, 210, 270, 180],
};

type Motif = (x: number, y: number, r: number, fill: string, rand: () => number) => string;

const f = (n: number) => n.toFixed(1);

const MOTIFS: Record<string, Motif> = {
  birthday: (x, y, r, fill) =>
    `<ellipse cx="${f(x)}" cy="${f(y)}" rx="${f(r * 0.8)}" ry="${f(r)}" fill="${fill}"/>` +
    `<path d="M${f(x)} ${f(y + r)} q ${f(r * 0.3)} ${f(r * 0.8)} 0 ${f(r * 1.6)}" stroke="${fill}" stroke-width="${f(r / 8)}" fill="none"/>`,
  love: (x, y, r, fill) =>
    `<path d="M${f(x)} ${f(y + r)} C ${f(x - r * 1.6)} ${f(y - r * 0.2)} ${f(x - r * 0.6)} ${f(y - r * 1.3)} ${f(x)} ${f(y - r * 0.4)} C ${f(x + r * 0.6)} ${f(y - r * 1.3)} ${f(x + r * 1.6)} ${f(y - r * 0.2)} ${f(x)} ${f(y + r)} Z" fill="${fill}"/>`,
  thanks: (x, y, r, fill) => {
    let petals = "";
    for (let i = 0; i < 6; i++) {
      const a = (i * Math.PI) / 3;
      petals += `<circle cx="${f(x + Math.cos(a) * r * 0.6)}" cy="${f(y + Math.sin(a) * r * 0.6)}" r="${f(r * 0.45)}" fill="${fill}"/>`;
    }
    return `${petals}<circle cx="${f(x)}" cy="${f(y)}" r="${f(r * 0.35)}" fill="#fff7d6"/>`;
  },
  congrats: (x, y, r, fill, rand) => {
    const turn = rand() * Math.PI;
    const points = Array.from({ length: 10 }, (_, i) => {
      const a = turn + (i * Math.PI) / 5;
      const d = i % 2 === 0 ? r : r * 0.45;
      return `${f(x + Math.cos(a) * d)},${f(y + Math.sin(a) * d)}`;
    });
    return `<polygon points="${points.join(" ")}" fill="${fill}"/>`;
  },
};
const defaultMotif: Motif = (x, y, r, fill) =>
  `<circle cx="${f(x)}" cy="${f(y)}" r="${f(r)}" fill="${fill}"/>`;

/** Lines of at most `width` characters, broken at spaces where possible, at most `maxLines`. */
export function wrap(text: string, width: number, maxLines: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ").filter(Boolean)) {
    for (let rest = word; rest.length > 0; ) {
      const room = line ? width - line.length - 1 : width;
      if (rest.length <= room) {
        line = line ? `${line} ${rest}` : rest;
        rest = "";
      } else if (line) {
        lines.push(line);
        line = "";
      } else {
        lines.push(rest.slice(0, width));
        rest = rest.slice(width);
      }
    }
  }
  if (line) lines.push(line);
  return lines.slice(0, maxLines);
}

/** One line of dot-matrix text centred on `cx`, its top at `top`, each dot `dot` pixels. */
function pixelText(text: string, cx: number, top: number, dot: number, fill: string, style: string): string {
  const width = text.length * 6 * dot - dot;
  const left = cx - width / 2;
  let out = "";
  for (const [i, ch] of Array.from(text).entries()) {
    const glyph = GLYPHS[ch] ?? GLYPHS["?"] ?? [];
    for (const [row, bits] of glyph.entries()) {
      for (let col = 0; col < 5; col++) {
        if (bits[col] !== "#") continue;
        const x = left + (i * 6 + col) * dot;
        const y = top + row * dot;
        out +=
          style === "watercolor"
            ? `<circle cx="${f(x + dot / 2)}" cy="${f(y + dot / 2)}" r="${f(dot * 0.62)}"/>`
            : style === "minimal"
              ? `<rect x="${f(x + dot * 0.15)}" y="${f(y + dot * 0.15)}" width="${f(dot * 0.7)}" height="${f(dot * 0.7)}"/>`
              : `<rect x="${f(x)}" y="${f(y)}" width="${f(dot + 0.5)}" height="${f(dot + 0.5)}"/>`;
      }
    }
  }
  return `<g fill="${fill}">${out}</g>`;
}

const hsl = (h: number, s: number, l: number) => `hsl(${Math.round(((h % 360) + 360) % 360)},${s}%,${l}%)`;

/**
 * The SVG of one design: a background and motifs for the theme, painted in the style (watercolor:
 * blurred translucent washes; minimal: white space and a few flat shapes; retro: sunset stripes and
 * chunky pixels), the name large in the middle and the theme's caption below it. Every random
 * choice comes from a PRNG seeded with the round id and design index.
 */
export function designSvg(input: DesignInput): string {
  const rand = seededRandom(`${input.roundId}#${input.index}`);
  const s = input.size;
  const hues = THEME_HUES[input.theme] ?? [rand() * 360, rand() * 360, rand() * 360, rand() * 360];
  const shift = input.index * 37 + rand() * 40;
  const colour = (i: number, sat: number, light: number) =>
    hsl((hues[i % hues.length] ?? 0) + shift, sat, light);
  const motif = MOTIFS[input.theme] ?? defaultMotif;

  let background: string;
  let defs = "";
  let motifs = "";
  let ink: string;
  const count = input.style === "minimal" ? 3 + Math.floor(rand() * 3) : 10 + Math.floor(rand() * 10);
  const place = () => {
    // Motifs keep clear of the band where the name is drawn.
    const x = rand() * s;
    const band = rand() < 0.5 ? [0.02, 0.3] : [0.72, 0.98];
    const y = s * ((band[0] ?? 0) + rand() * ((band[1] ?? 1) - (band[0] ?? 0)));
    return [x, y] as const;
  };
  if (input.style === "watercolor") {
    background = `<rect width="${s}" height="${s}" fill="${colour(0, 35, 95)}"/>`;
    defs = `<filter id="wash" x="-20%" y="-20%" width="140%" height="140%"><feGaussianBlur stdDeviation="${f(s / 90)}"/></filter>`;
    let washes = "";
    for (let i = 0; i < count; i++) {
      const [x, y] = place();
      washes += motif(x, y, s * (0.04 + rand() * 0.05), colour(i, 70, 65), rand);
    }
    motifs = `<g filter="url(#wash)" opacity="0.75">${washes}</g>`;
    ink = colour(1, 55, 35);
  } else if (input.style === "minimal") {
    background = `<rect width="${s}" height="${s}" fill="#fbfbf8"/>`;
    for (let i = 0; i < count; i++) {
      const [x, y] = place();
      motifs += motif(x, y, s * (0.03 + rand() * 0.03), colour(i, 60, 55), rand);
    }
    motifs += `<line x1="${f(s * 0.3)}" y1="${f(s * 0.66)}" x2="${f(s * 0.7)}" y2="${f(s * 0.66)}" stroke="${colour(2, 40, 60)}" stroke-width="${f(s / 200)}"/>`;
    ink = "#222";
  } else {
    // retro, and any style we have no painter for
    let stripes = "";
    for (let i = 0; i < 6; i++)
      stripes += `<rect y="${f((s * i) / 6)}" width="${s}" height="${f(s / 6 + 1)}" fill="${hsl((hues[0] ?? 0) + shift - i * 14, 75, 22 + i * 9)}"/>`;
    background = stripes;
    motifs = `<circle cx="${f(s / 2)}" cy="${f(s * 0.78)}" r="${f(s * 0.22)}" fill="${colour(2, 90, 60)}" opacity="0.8"/>`;
    for (let i = 0; i < count; i++) {
      const [x, y] = place();
      motifs += motif(x, y, s * (0.025 + rand() * 0.035), colour(i + 1, 90, 70), rand);
    }
    ink = "#fff8e7";
  }

  const nameLines = wrap(drawable(input.name) || "?", 10, 2);
  const longest = Math.max(...nameLines.map((l) => l.length));
  const dot = Math.min(s / 40, (s * 0.86) / (longest * 6));
  const lineHeight = dot * 9;
  const captionText = wrap(drawable(input.caption), 20, 1)[0] ?? "";
  const captionDot = Math.min(s / 110, (s * 0.8) / Math.max(1, captionText.length * 6));
  const blockTop = s / 2 - (nameLines.length * lineHeight) / 2 - lineHeight * 0.3;
  let text = "";
  for (const [i, line] of nameLines.entries())
    text += pixelText(line, s / 2, blockTop + i * lineHeight, dot, ink, input.style);
  text += pixelText(
    captionText,
    s / 2,
    blockTop + nameLines.length * lineHeight + dot * 1.5,
    captionDot,
    ink,
    input.style === "watercolor" ? "minimal" : input.style,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}" viewBox="0 0 ${s} ${s}"><defs>${defs}</defs>${background}${motifs}${text}</svg>`;
}

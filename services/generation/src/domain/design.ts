export interface DesignInput {
  /** The round id and the design's index seed every choice, so a round always renders the same. */
  roundId: string;
  /** 1-based position in the round: each position has its own composition and palette. */
  index: number;
  /** The shopper's text: untrusted, escaped here and drawn only with characters a face has. */
  name: string;
  caption: string;
  theme: string;
  style: string;
  /** Width and height in pixels (square). */
  size: number;
}

/** A typeface as the design measures it; every length is in ems (a fraction of the font size). */
export interface Face {
  /** The family name the SVG asks the renderer for. */
  family: string;
  weight: number;
  covers(codePoint: number): boolean;
  /** Advance width of a line, kerning included. */
  width(text: string): number;
  ascent: number;
  /** Below the baseline, positive. */
  descent: number;
  capHeight: number;
}

/** The faces a design draws with: a display face per style for the name, a sans for the rest. */
export interface Typography {
  /** Handwritten, for watercolor. */
  script: Face;
  /** High-contrast serif, for minimal. */
  serif: Face;
  /** Bold 1980s script, for retro. */
  retro: Face;
  /** Captions, and names no display face can draw (Greek, Cyrillic, Vietnamese). */
  sans: Face;
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

/** Text for SVG character data and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c] ?? c,
  );
}

const isSpace = (c: string) => /\s/u.test(c);

/**
 * The face that draws `text` and the text it draws. The first of `faces` that has every character
 * wins; when none has them all, the one that has the most draws the characters it has and the rest
 * are left out (an emoji, a script no face covers), so a name is never drawn as empty boxes.
 */
export function pickFace(text: string, faces: Face[]): { face: Face; text: string } {
  const chars = [...text.normalize("NFC")];
  const covered = (face: Face) =>
    chars.filter((c) => isSpace(c) || face.covers(c.codePointAt(0) ?? 0)).length;
  let best = faces[0];
  if (!best) throw new Error("pickFace needs at least one face");
  let bestCount = -1;
  for (const face of faces) {
    const count = covered(face);
    if (count === chars.length) return { face, text: collapse(chars.join("")) };
    if (count > bestCount) [best, bestCount] = [face, count];
  }
  const face = best;
  const kept = chars.filter((c) => isSpace(c) || face.covers(c.codePointAt(0) ?? 0));
  return { face, text: collapse(kept.join("")) };
}

const collapse = (text: string) => text.replace(/\s+/gu, " ").trim();

export interface FitOptions {
  /** The box the lines must stay inside, in user units. */
  width: number;
  height: number;
  maxSize: number;
  /** Extra space after each character, in ems. */
  letterSpacing?: number;
  maxLines?: 1 | 2;
  /** Baseline to baseline, in ems. */
  lineStep?: number;
}

export interface Fitted {
  lines: string[];
  size: number;
}

/** Width of a line at font size 1 with the tracking the renderer adds between characters. */
const lineWidth = (face: Face, line: string, spacing: number) =>
  face.width(line) + spacing * Math.max(0, [...line].length - 1);

/**
 * The font size and line breaks that keep `text` inside the box: one line at the largest size that
 * fits, or two lines (broken at a space or after a hyphen, the break that balances them best) when
 * that is markedly larger. Nothing is cut: a long word gets a smaller size.
 */
export function fitText(text: string, face: Face, options: FitOptions): Fitted {
  const spacing = options.letterSpacing ?? 0;
  const step = options.lineStep ?? 1.1;
  // A line's ink: capitals, an accent above them, most of a descender (a face's ascent and
  // descent leave room for rarer marks and would make every name smaller than it needs to be).
  const extent = face.capHeight + 0.3 + face.descent * 0.6;
  const sizeFor = (lines: string[]) => {
    const widest = Math.max(...lines.map((l) => lineWidth(face, l, spacing)), 1e-6);
    const tall = (lines.length - 1) * step + extent;
    return Math.min(options.maxSize, options.width / widest, options.height / tall);
  };
  const one = { lines: [text], size: sizeFor([text]) };
  if ((options.maxLines ?? 2) < 2) return one;
  let two: Fitted | undefined;
  for (const match of text.matchAll(/ |-(?=.)/g)) {
    const at = match.index + (match[0] === "-" ? 1 : 0);
    const lines = [text.slice(0, at).trim(), text.slice(at).trim()];
    if (!lines[0] || !lines[1]) continue;
    const size = sizeFor(lines);
    if (!two || size > two.size) two = { lines, size };
  }
  // A name reads best on one line; two lines only when that makes it clearly larger.
  return two && two.size > one.size * 1.25 ? two : one;
}

const f = (n: number) => (Math.round(n * 10) / 10).toString();

function textLine(line: string, x: number, y: number, face: Face, size: number, attributes: string): string {
  return `<text x="${f(x)}" y="${f(y)}" text-anchor="middle" font-family="${escapeXml(face.family)}" font-weight="${face.weight}" font-size="${f(size)}" ${attributes}>${escapeXml(line)}</text>`;
}

interface Palette {
  paper: string;
  ink: string;
  accents: string[];
}

/** Three palettes per theme, one per design of a round, so the three read as different offers. */
const PALETTES: Record<string, Palette[]> = {
  birthday: [
    { paper: "#fff6ea", ink: "#3d2c8d", accents: ["#ff6b6b", "#ffc93c", "#4d96ff", "#6bcb77", "#c780fa"] },
    { paper: "#eaf6ff", ink: "#0b3c5d", accents: ["#ff8fab", "#ffc300", "#3ddc97", "#7b2cbf", "#ff5d8f"] },
    { paper: "#fdf0ff", ink: "#5a189a", accents: ["#f72585", "#4cc9f0", "#ffbe0b", "#fb5607", "#3a86ff"] },
  ],
  love: [
    { paper: "#fff0f3", ink: "#a4133c", accents: ["#ff4d6d", "#ff8fa3", "#c9184a", "#ffb3c1", "#800f2f"] },
    { paper: "#fdf6ec", ink: "#7f1d1d", accents: ["#e63946", "#f4a261", "#ffb4a2", "#b5838d", "#d62839"] },
    { paper: "#f9eef6", ink: "#6a0572", accents: ["#d00070", "#ff7aa2", "#b388eb", "#ff99c8", "#8338ec"] },
  ],
  thanks: [
    { paper: "#fefae0", ink: "#5f370e", accents: ["#f4a259", "#bc4b51", "#8cb369", "#f4c95d", "#5b8e7d"] },
    { paper: "#fff8f0", ink: "#264653", accents: ["#e76f51", "#f4a261", "#e9c46a", "#2a9d8f", "#d1495b"] },
    { paper: "#f1faee", ink: "#1d3557", accents: ["#e07a5f", "#f2cc8f", "#81b29a", "#f28482", "#3d405b"] },
  ],
  congrats: [
    { paper: "#f5f7ff", ink: "#14213d", accents: ["#fca311", "#e63946", "#457b9d", "#2a9d8f", "#ffb703"] },
    { paper: "#fffaf0", ink: "#3c096c", accents: ["#ffd60a", "#9d4edd", "#ff006e", "#06d6a0", "#118ab2"] },
    { paper: "#f0fff4", ink: "#1b4332", accents: ["#ffb703", "#fb8500", "#40916c", "#e76f51", "#219ebc"] },
  ],
};

const hsl = (h: number, s: number, l: number) => `hsl(${Math.round(((h % 360) + 360) % 360)},${s}%,${l}%)`;

/** A theme we have no palette for still gets harmonious colours: hues spread from a seeded start. */
function seededPalette(rand: () => number): Palette {
  const h = rand() * 360;
  return {
    paper: hsl(h, 60, 96),
    ink: hsl(h + 200, 55, 25),
    accents: [0, 72, 144, 216, 288].map((d) => hsl(h + d, 75, 60)),
  };
}

/** Skies for retro, dark to warm, one per design of a round. */
const SKIES = [
  ["#1b0a3c", "#7b1fa2", "#ff6f91"],
  ["#0b1d51", "#8c1c73", "#ff9e00"],
  ["#230b33", "#c2185b", "#ffb74d"],
];

/** How a motif is painted: filled (watercolor, minimal) or as neon outlines (retro). */
interface Paint {
  fill: (colour: string) => string;
}
const filled: Paint = { fill: (c) => `fill="${c}"` };
const outlined = (width: number): Paint => ({
  fill: (c) =>
    `fill="${c}" fill-opacity="0.18" stroke="${c}" stroke-width="${f(width)}" stroke-linejoin="round"`,
});

type Motif = (x: number, y: number, r: number, colour: string, paint: Paint, rand: () => number) => string;

const balloon: Motif = (x, y, r, colour, paint) =>
  `<path d="M${f(x)} ${f(y + r * 1.15)} q ${f(r * 0.35)} ${f(r * 0.7)} ${f(-r * 0.1)} ${f(r * 1.5)}" stroke="${colour}" stroke-width="${f(Math.max(1, r / 14))}" fill="none" opacity="0.7"/>` +
  `<path d="M${f(x - r * 0.12)} ${f(y + r * 1.2)} l ${f(r * 0.12)} ${f(-r * 0.16)} l ${f(r * 0.12)} ${f(r * 0.16)} z" ${paint.fill(colour)}/>` +
  `<ellipse cx="${f(x)}" cy="${f(y)}" rx="${f(r * 0.85)}" ry="${f(r * 1.05)}" ${paint.fill(colour)}/>` +
  `<ellipse cx="${f(x - r * 0.32)}" cy="${f(y - r * 0.42)}" rx="${f(r * 0.16)}" ry="${f(r * 0.26)}" fill="#fff" opacity="0.55" transform="rotate(25 ${f(x - r * 0.32)} ${f(y - r * 0.42)})"/>`;

const heart: Motif = (x, y, r, colour, paint, rand) => {
  const turn = (rand() - 0.5) * 30;
  return `<path transform="rotate(${f(turn)} ${f(x)} ${f(y)})" d="M${f(x)} ${f(y + r * 0.9)} C ${f(x - r * 1.5)} ${f(y - r * 0.1)} ${f(x - r * 0.75)} ${f(y - r * 1.25)} ${f(x)} ${f(y - r * 0.45)} C ${f(x + r * 0.75)} ${f(y - r * 1.25)} ${f(x + r * 1.5)} ${f(y - r * 0.1)} ${f(x)} ${f(y + r * 0.9)} Z" ${paint.fill(colour)}/>`;
};

const flower: Motif = (x, y, r, colour, paint, rand) => {
  const turn = rand() * 72;
  let petals = "";
  for (let i = 0; i < 5; i++) {
    const a = turn + i * 72;
    petals += `<ellipse cx="${f(x)}" cy="${f(y - r * 0.55)}" rx="${f(r * 0.36)}" ry="${f(r * 0.55)}" transform="rotate(${f(a)} ${f(x)} ${f(y)})" ${paint.fill(colour)}/>`;
  }
  return `${petals}<circle cx="${f(x)}" cy="${f(y)}" r="${f(r * 0.28)}" fill="#ffe08a" stroke="#e0a526" stroke-width="${f(r / 16)}"/>`;
};

const star: Motif = (x, y, r, colour, paint, rand) => {
  const turn = -Math.PI / 2 + (rand() - 0.5) * 0.6;
  const points = Array.from({ length: 10 }, (_, i) => {
    const a = turn + (i * Math.PI) / 5;
    const d = i % 2 === 0 ? r : r * 0.45;
    return `${f(x + Math.cos(a) * d)},${f(y + Math.sin(a) * d)}`;
  });
  return `<polygon points="${points.join(" ")}" ${paint.fill(colour)}/>`;
};

const dot: Motif = (x, y, r, colour, paint) =>
  `<circle cx="${f(x)}" cy="${f(y)}" r="${f(r * 0.8)}" ${paint.fill(colour)}/>`;

/** Confetti: small strips and dots that fill the gaps between motifs. */
const confetti: Motif = (x, y, r, colour, _paint, rand) =>
  rand() < 0.5
    ? `<rect x="${f(x - r * 0.5)}" y="${f(y - r * 0.18)}" width="${f(r)}" height="${f(r * 0.36)}" rx="${f(r * 0.1)}" fill="${colour}" transform="rotate(${f(rand() * 180)} ${f(x)} ${f(y)})"/>`
    : `<circle cx="${f(x)}" cy="${f(y)}" r="${f(r * 0.28)}" fill="${colour}"/>`;

/** Each theme's motif, and the small things scattered around it. */
const THEME_MOTIFS: Record<string, { main: Motif; scatter: Motif }> = {
  birthday: { main: balloon, scatter: confetti },
  love: { main: heart, scatter: heart },
  thanks: { main: flower, scatter: dot },
  congrats: { main: star, scatter: confetti },
};

/** Where the name, the caption and the motifs go; one per design of a round. */
interface Layout {
  /** Centre and box of the name. */
  name: { cy: number; width: number; height: number };
  /** Motif centres and radii, from the layout's own arrangement. */
  motifs: (rand: () => number) => { x: number; y: number; r: number; main: boolean }[];
}

const W = 512;

const LAYOUTS: Layout[] = [
  {
    // Centred: the name across the middle, motifs in bands above and below.
    name: { cy: 256, width: 430, height: 200 },
    motifs: (rand) => {
      const out = [];
      for (let i = 0; i < 5; i++) {
        out.push({
          x: 62 + i * 97 + (rand() - 0.5) * 30,
          y: 72 + (rand() - 0.5) * 36,
          r: 26 + rand() * 12,
          main: true,
        });
        out.push({
          x: 30 + i * 113 + rand() * 30,
          y: 430 + rand() * 50,
          r: 14 + rand() * 8,
          main: rand() < 0.4,
        });
      }
      for (let i = 0; i < 10; i++)
        out.push({
          x: rand() * W,
          y: rand() < 0.5 ? 130 + rand() * 25 : 380 + rand() * 30,
          r: 8 + rand() * 5,
          main: false,
        });
      return out;
    },
  },
  {
    // A bouquet of motifs on top, the name below it.
    name: { cy: 345, width: 440, height: 170 },
    motifs: (rand) => {
      // Minimal keeps the even places: the middle three.
      const out = [
        { x: 256, y: 110, r: 58, main: true },
        { x: 100, y: 80, r: 26, main: true },
        { x: 168, y: 145, r: 44, main: true },
        { x: 412, y: 80, r: 26, main: true },
        { x: 344, y: 145, r: 44, main: true },
      ];
      for (let i = 0; i < 14; i++)
        out.push({
          x: 20 + rand() * 472,
          y: i < 7 ? 20 + rand() * 200 : 440 + rand() * 55,
          r: 7 + rand() * 6,
          main: false,
        });
      return out;
    },
  },
  {
    // A wreath of motifs around the name.
    name: { cy: 256, width: 300, height: 190 },
    motifs: (rand) => {
      const out = [];
      const start = rand() * Math.PI;
      for (let i = 0; i < 14; i++) {
        const a = start + (i * 2 * Math.PI) / 14;
        out.push({
          x: 256 + Math.cos(a) * 200,
          y: 256 + Math.sin(a) * 200,
          r: i % 2 === 0 ? 30 : 18,
          main: i % 2 === 0,
        });
      }
      return out;
    },
  },
];

/** What a style paints under the motifs and the text, and how it paints them. */
interface Canvas {
  defs: string;
  background: string;
  ink: string;
  captionInk: string;
  paint: Paint;
  /** Wraps each motif (watercolor blurs it). */
  treat: (motif: string) => string;
}

type Painter = (palette: Palette, slot: number, rand: () => number) => Canvas;

const accentOf = (palette: Palette, i: number) => palette.accents[i % palette.accents.length] ?? palette.ink;

const watercolor: Painter = (palette, _slot, rand) => {
  // Soft washes of colour: radial gradients fading out (a blur this wide costs ~50 ms a design).
  let defs = `<filter id="wash" x="-30%" y="-30%" width="160%" height="160%"><feGaussianBlur stdDeviation="5"/></filter>`;
  let blooms = "";
  for (let i = 0; i < 4; i++) {
    const c = accentOf(palette, i + 1);
    defs += `<radialGradient id="bloom${i}"><stop offset="0" stop-color="${c}" stop-opacity="0.45"/><stop offset="0.6" stop-color="${c}" stop-opacity="0.2"/><stop offset="1" stop-color="${c}" stop-opacity="0"/></radialGradient>`;
    blooms += `<ellipse cx="${f(60 + rand() * 392)}" cy="${f(60 + rand() * 392)}" rx="${f(120 + rand() * 80)}" ry="${f(100 + rand() * 70)}" fill="url(#bloom${i})"/>`;
  }
  return {
    defs,
    background: `<rect width="${W}" height="${W}" fill="${palette.paper}"/>${blooms}`,
    ink: palette.ink,
    captionInk: palette.ink,
    paint: filled,
    // Blurred per motif: a filter costs by its region, and the motifs cover far less than the canvas.
    treat: (m) => `<g filter="url(#wash)" opacity="0.8">${m}</g><g opacity="0.35">${m}</g>`,
  };
};

const minimal: Painter = (palette) => ({
  defs: "",
  background:
    `<rect width="${W}" height="${W}" fill="#fbfaf7"/>` +
    `<rect x="22" y="22" width="${W - 44}" height="${W - 44}" fill="none" stroke="${accentOf(palette, 0)}" stroke-width="1.5" opacity="0.6"/>`,
  ink: palette.ink,
  captionInk: palette.ink,
  paint: filled,
  treat: (m) => m,
});

/** A synthwave sunset: sky gradient, a sun cut by stripes, a neon grid below the horizon at y 410. */
const retro: Painter = (_palette, slot) => {
  const sky = SKIES[slot] ?? [];
  const cuts = Array.from(
    { length: 6 },
    (_, i) => `<rect y="${f(300 + i * 22)}" width="${W}" height="${f(3 + i * 2)}" fill="#000"/>`,
  );
  let grid = "";
  for (let i = 0; i < 7; i++)
    grid += `<line x1="0" y1="${f(410 + (i * i * 102) / 36)}" x2="${W}" y2="${f(410 + (i * i * 102) / 36)}"/>`;
  for (let i = -8; i <= 8; i++)
    grid += `<line x1="${f(256 + i * 18)}" y1="410" x2="${f(256 + i * 110)}" y2="${W}"/>`;
  return {
    defs:
      `<linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${sky[0]}"/><stop offset="0.55" stop-color="${sky[1]}"/><stop offset="1" stop-color="${sky[2]}"/></linearGradient>` +
      `<linearGradient id="sun" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#fff275"/><stop offset="1" stop-color="#ff3d7f"/></linearGradient>` +
      `<mask id="cuts"><rect width="${W}" height="${W}" fill="#fff"/>${cuts.join("")}</mask>`,
    background:
      `<rect width="${W}" height="${W}" fill="url(#sky)"/>` +
      `<circle cx="256" cy="${slot === 1 ? 390 : 300}" r="150" fill="url(#sun)" mask="url(#cuts)" opacity="0.9"/>` +
      `<rect y="410" width="${W}" height="${W - 410}" fill="#1a0630"/>` +
      `<g stroke="#ff4fd8" stroke-width="1.6" opacity="0.75">${grid}</g>`,
    ink: "#fff6d5",
    captionInk: "#7df9ff",
    paint: outlined(3),
    treat: (m) => m,
  };
};

const PAINTERS = { watercolor, minimal, retro };

/**
 * The SVG of one design: a background, the theme's motif (balloons, hearts, flowers, stars) in one
 * of three arrangements, painted in the style (watercolor: soft translucent washes and a script
 * name; minimal: white space, flat shapes and a serif name; retro: a sunset with a striped sun,
 * neon outlines and a bold script name), the name large and the theme's caption under it. The
 * design's index picks its arrangement and palette, so the three designs of a round differ; every
 * other choice comes from a PRNG seeded with the round id and index.
 */
export function designSvg(input: DesignInput, typography: Typography): string {
  const rand = seededRandom(`${input.roundId}#${input.index}`);
  const slot = (Math.max(1, input.index) - 1) % 3;
  const layout = LAYOUTS[slot] as Layout;
  const palettes = PALETTES[input.theme];
  const palette = palettes?.[slot] ?? seededPalette(rand);
  const motif = THEME_MOTIFS[input.theme] ?? { main: dot, scatter: dot };
  const style = input.style === "watercolor" || input.style === "retro" ? input.style : "minimal";
  const accent = (i: number) => accentOf(palette, i);

  const display = { watercolor: typography.script, minimal: typography.serif, retro: typography.retro }[
    style
  ];
  const others = [typography.script, typography.serif, typography.retro].filter((x) => x !== display);
  const name = pickFace(input.name, [display, ...others, typography.sans]);
  const caption = pickFace(input.caption, [typography.sans]);

  const { defs, background, ink, captionInk, paint, treat } = PAINTERS[style](palette, slot, rand);

  let motifs = "";
  for (const [i, spot] of layout.motifs(rand).entries()) {
    // Retro's bottom is the grid, and minimal keeps white space: fewer motifs there.
    if (style === "retro" && spot.y > 400) continue;
    if (style === "minimal" && !(spot.main && i % 2 === 0)) continue;
    const draw = spot.main ? motif.main : motif.scatter;
    motifs += treat(draw(spot.x, spot.y, spot.r * (style === "minimal" ? 0.8 : 1), accent(i), paint, rand));
  }

  const box = layout.name;
  const centre = 256;
  let text = "";
  const nameStep = Math.max(0.95, (name.face.ascent + name.face.descent) * 0.72);
  const fittedName = name.text
    ? fitText(name.text, name.face, {
        width: box.width,
        height: box.height - 44,
        maxSize: 130,
        lineStep: nameStep,
      })
    : undefined;
  // Without a name the caption is the centrepiece; with one it is a spaced line of small capitals.
  const spacing = fittedName ? 0.22 : 0.08;
  const fittedCaption = caption.text
    ? fitText(caption.text, caption.face, {
        width: box.width * 0.92,
        height: fittedName ? 30 : box.height,
        maxSize: fittedName ? 22 : 64,
        letterSpacing: spacing,
      })
    : undefined;

  // The name and the caption as one block centred in the layout's box, measured on capitals.
  const nameHeight = fittedName
    ? ((fittedName.lines.length - 1) * nameStep + name.face.capHeight) * fittedName.size
    : 0;
  const gap = fittedName && fittedCaption ? Math.max(26, (name.face.descent + 0.2) * fittedName.size) : 0;
  const captionHeight = fittedCaption
    ? ((fittedCaption.lines.length - 1) * 1.2 + caption.face.capHeight) * fittedCaption.size
    : 0;
  const top = box.cy - (nameHeight + gap + captionHeight) / 2;

  if (fittedName) {
    const { lines, size } = fittedName;
    for (const [i, line] of lines.entries()) {
      const y = top + (name.face.capHeight + i * nameStep) * size;
      if (style === "retro") {
        text += textLine(line, centre + size * 0.05, y + size * 0.05, name.face, size, `fill="#ff2e88"`);
        text += textLine(
          line,
          centre,
          y,
          name.face,
          size,
          `fill="none" stroke="#2b0a3d" stroke-width="${f(size * 0.06)}" stroke-linejoin="round"`,
        );
      } else if (style === "watercolor")
        text += textLine(line, centre + 2, y + 2, name.face, size, `fill="${accent(1)}" opacity="0.35"`);
      text += textLine(line, centre, y, name.face, size, `fill="${ink}"`);
    }
  }

  if (fittedCaption) {
    const { lines, size } = fittedCaption;
    const tracking = spacing * size;
    const first = top + nameHeight + gap + caption.face.capHeight * size;
    const half = (Math.max(...lines.map((l) => lineWidth(caption.face, l, spacing))) * size) / 2;
    if (style === "retro") {
      const y = first - caption.face.capHeight * size - size * 0.55;
      const h = captionHeight + size * 1.1;
      text += `<rect x="${f(centre - half - size)}" y="${f(y)}" width="${f(2 * half + 2 * size)}" height="${f(h)}" rx="${f(Math.min(h / 2, 16))}" fill="#1a0630" fill-opacity="0.8" stroke="${captionInk}" stroke-width="1.5"/>`;
    }
    if (style === "minimal" && fittedName) {
      const y = first - (caption.face.capHeight * size) / 2;
      text +=
        `<line x1="${f(centre - half - 60)}" y1="${f(y)}" x2="${f(centre - half - 16)}" y2="${f(y)}" stroke="${accent(0)}" stroke-width="1.5"/>` +
        `<line x1="${f(centre + half + 16)}" y1="${f(y)}" x2="${f(centre + half + 60)}" y2="${f(y)}" stroke="${accent(0)}" stroke-width="1.5"/>`;
    }
    for (const [i, line] of lines.entries())
      text += textLine(
        line,
        centre,
        first + i * 1.2 * size,
        caption.face,
        size,
        `fill="${captionInk}" letter-spacing="${f(tracking)}"`,
      );
  }

  const s = input.size;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}" viewBox="0 0 ${W} ${W}"><defs>${defs}</defs>${background}${motifs}${text}</svg>`;
}

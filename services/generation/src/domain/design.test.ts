import assert from "node:assert/strict";
import { test } from "node:test";
import {
  designSvg,
  escapeXml,
  type Face,
  fitText,
  pickFace,
  seededRandom,
  type Typography,
} from "./design.ts";

/** A face with fixed metrics: every character half an em wide, Latin up to Latin Extended-B. */
function fakeFace(family: string, covers = (cp: number) => cp < 0x250): Face {
  return {
    family,
    weight: 400,
    covers,
    width: (text) => [...text].length * 0.5,
    ascent: 1,
    descent: 0.25,
    capHeight: 0.7,
  };
}

const greekToo = (cp: number) => cp < 0x250 || (cp >= 0x370 && cp < 0x400);
const typography: Typography = {
  script: fakeFace("Script"),
  serif: fakeFace("Serif"),
  retro: fakeFace("Retro"),
  sans: fakeFace("Sans", greekToo),
};

const input = {
  roundId: "PN:1/j1/r1",
  index: 1,
  name: "Rosa",
  caption: "HAPPY BIRTHDAY",
  theme: "birthday",
  style: "watercolor",
  size: 256,
};

/** The text elements of an SVG: family, size and content. */
function texts(svg: string) {
  return [
    ...svg.matchAll(/<text [^>]*font-family="([^"]*)"[^>]*font-size="([\d.]+)"[^>]*>([^<]*)<\/text>/g),
  ].map(([, family, size, content]) => ({ family, size: Number(size), content }));
}

test("a round's design is the same every time; other designs, rounds and briefs differ", () => {
  const svg = designSvg(input, typography);
  assert.equal(designSvg(input, typography), svg);
  const others = [
    designSvg({ ...input, index: 2 }, typography),
    designSvg({ ...input, index: 3 }, typography),
    designSvg({ ...input, roundId: "PN:1/j1/r2" }, typography),
    designSvg({ ...input, name: "Bo" }, typography),
    designSvg({ ...input, theme: "love" }, typography),
    designSvg({ ...input, style: "retro" }, typography),
    designSvg({ ...input, style: "minimal" }, typography),
  ];
  assert.equal(new Set([svg, ...others]).size, 8);
});

test("each style draws the name in its own face and the caption in the sans", () => {
  for (const [style, family] of [
    ["watercolor", "Script"],
    ["minimal", "Serif"],
    ["retro", "Retro"],
    ["pastel", "Serif"],
  ] as const) {
    const drawn = texts(designSvg({ ...input, style }, typography));
    assert.ok(
      drawn.some((t) => t.content === "Rosa" && t.family === family),
      style,
    );
    assert.ok(
      drawn.some((t) => t.content === "HAPPY BIRTHDAY" && t.family === "Sans"),
      style,
    );
  }
});

test("the name is text content, escaped: markup in a name stays characters", () => {
  const svg = designSvg({ ...input, name: '</svg><script>alert("x")</script> & Co' }, typography);
  assert.doesNotMatch(svg, /<script|<\/svg><|& Co/);
  assert.match(svg, /&lt;\/svg&gt;&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt; &amp; Co/);
  assert.equal(svg.match(/<svg /g)?.length, 1);
  assert.equal(escapeXml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;");
});

test("accented names keep their accents and their face", () => {
  for (const name of ["Zoë", "José", "Łukasz", "Dvořák"]) {
    assert.deepEqual(pickFace(name, [typography.script, typography.sans]), {
      face: typography.script,
      text: name,
    });
  }
  // Decomposed input (e + combining diaeresis) is drawn as the composed letter.
  assert.equal(pickFace("Zoe\u0308", [typography.script]).text, "Zoë");
});

test("a name the display face lacks falls back to a face that has it; characters no face has are left out", () => {
  assert.equal(pickFace("Ξένια", [typography.script, typography.sans]).face, typography.sans);
  assert.deepEqual(pickFace("Ana 🎂", [typography.script, typography.sans]), {
    face: typography.script,
    text: "Ana",
  });
  assert.deepEqual(pickFace("李娜", [typography.script, typography.sans]), {
    face: typography.script,
    text: "",
  });
  assert.deepEqual(pickFace("  Ana \n  María ", [typography.script]), {
    face: typography.script,
    text: "Ana María",
  });
});

test("a name no face can draw leaves the caption as the centrepiece, never an empty design", () => {
  const drawn = texts(designSvg({ ...input, name: "李娜" }, typography));
  assert.deepEqual(
    drawn.map((t) => t.content),
    ["HAPPY", "BIRTHDAY"],
  );
  const withName = texts(designSvg(input, typography)).find((t) => t.content === "HAPPY BIRTHDAY");
  assert.ok((drawn[0]?.size ?? 0) > 2 * (withName?.size ?? Infinity));
});

const box = { width: 400, height: 200, maxSize: 120 };
const inside = (fitted: { lines: string[]; size: number }, face: Face, options: typeof box) => {
  for (const line of fitted.lines) assert.ok(face.width(line) * fitted.size <= options.width + 1e-9, line);
};

test("a short name is drawn at the largest size allowed", () => {
  const fitted = fitText("Bo", typography.serif, box);
  assert.deepEqual(fitted, { lines: ["Bo"], size: 120 });
});

test("a longer name shrinks to stay inside the box", () => {
  const face = typography.serif;
  const fitted = fitText("Maximiliano", face, box);
  assert.deepEqual(fitted.lines, ["Maximiliano"]);
  assert.ok(fitted.size < 120);
  inside(fitted, face, box);
  assert.ok(face.width("Maximiliano") * fitted.size > box.width - 1, "it uses the width it has");
});

test("a long name of several words wraps into two balanced lines, at a space or after a hyphen", () => {
  const face = typography.serif;
  const twoWords = fitText("Ana María de la Cruz Fernández", face, box);
  assert.deepEqual(twoWords.lines, ["Ana María de la", "Cruz Fernández"]);
  inside(twoWords, face, box);
  const hyphen = fitText("Anne-Marie Dubois-Lefèvre", face, { ...box, width: 300 });
  assert.deepEqual(hyphen.lines, ["Anne-Marie", "Dubois-Lefèvre"]);
  const barrel = fitText("Dubois-Lefèvre-Montmorency", face, { ...box, width: 300 });
  assert.deepEqual(barrel.lines, ["Dubois-Lefèvre-", "Montmorency"]);
  // Two lines only when they are clearly larger: a name that fits well stays on one line.
  assert.deepEqual(fitText("Ana María", face, box).lines, ["Ana María"]);
  assert.deepEqual(fitText("Ana María de la Cruz", face, { ...box, maxLines: 1 }).lines, [
    "Ana María de la Cruz",
  ]);
});

test("a long word is never cut: one line, smaller, inside the box; the height limits too", () => {
  const face = typography.serif;
  const word = "Maximilianfriedrichwilhelmvonhohenzollern";
  const fitted = fitText(word, face, box);
  assert.deepEqual(fitted.lines, [word]);
  inside(fitted, face, box);
  const low = fitText("Bo", face, { ...box, height: 50 });
  assert.ok(low.size < 120 && low.size > 0);
});

test("tracking counts in the width of a line", () => {
  const face = typography.sans;
  const plain = fitText("HAPPY BIRTHDAY", face, { width: 300, height: 100, maxSize: 100, maxLines: 1 });
  const tracked = fitText("HAPPY BIRTHDAY", face, {
    width: 300,
    height: 100,
    maxSize: 100,
    maxLines: 1,
    letterSpacing: 0.2,
  });
  assert.ok(tracked.size < plain.size);
  assert.ok((face.width("HAPPY BIRTHDAY") + 0.2 * 13) * tracked.size <= 300 + 1e-9);
});

test("the PRNG is deterministic per seed and spread over [0, 1)", () => {
  const a = seededRandom("x");
  const b = seededRandom("x");
  const values = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(values.slice(0, 5), [b(), b(), b(), b(), b()]);
  assert.ok(values.every((v) => v >= 0 && v < 1));
  assert.ok(values.some((v) => v < 0.1) && values.some((v) => v > 0.9));
});

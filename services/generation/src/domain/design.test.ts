import assert from "node:assert/strict";
import { test } from "node:test";
import { designSvg, seededRandom, wrap } from "./design.ts";
import { drawable } from "./glyphs.ts";

const input = {
  roundId: "PN:1/j1/r1",
  index: 1,
  name: "Rosa",
  caption: "HAPPY BIRTHDAY",
  theme: "birthday",
  style: "watercolor",
  size: 256,
};

test("a round's design is the same every time; other designs, rounds and briefs differ", () => {
  const svg = designSvg(input);
  assert.equal(designSvg(input), svg);
  const others = [
    designSvg({ ...input, index: 2 }),
    designSvg({ ...input, roundId: "PN:1/j1/r2" }),
    designSvg({ ...input, name: "Bo" }),
    designSvg({ ...input, theme: "love" }),
    designSvg({ ...input, style: "retro" }),
    designSvg({ ...input, style: "minimal" }),
  ];
  assert.equal(new Set([svg, ...others]).size, 7);
});

test("the name is drawn as shapes, never as text that needs a font or could inject markup", () => {
  const svg = designSvg({ ...input, name: '</svg><script>alert("x")</script>' });
  assert.doesNotMatch(svg, /<text|<script|alert/);
  assert.match(svg, /^<svg [^>]*width="256"/);
});

test("names become drawable letters: accents dropped, other scripts marked", () => {
  assert.equal(drawable("José-María d'Arc!"), "JOSE-MARIA D'ARC!");
  assert.equal(drawable("李娜"), "??");
});

test("wrap breaks at spaces, splits over-long words and keeps at most the lines asked", () => {
  assert.deepEqual(wrap("ANA MARIA DE LA CRUZ", 10, 2), ["ANA MARIA", "DE LA CRUZ"]);
  assert.deepEqual(wrap("MAXIMILIANOS", 10, 2), ["MAXIMILIAN", "OS"]);
  assert.deepEqual(wrap("A B C D E F G H I J K L", 3, 2), ["A B", "C D"]);
});

test("the PRNG is deterministic per seed and spread over [0, 1)", () => {
  const a = seededRandom("x");
  const b = seededRandom("x");
  const values = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(values.slice(0, 5), [b(), b(), b(), b(), b()]);
  assert.ok(values.every((v) => v >= 0 && v < 1));
  assert.ok(values.some((v) => v < 0.1) && values.some((v) => v > 0.9));
});

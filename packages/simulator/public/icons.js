/** Small line icons drawn for this page (24×24 grid), built as SVG nodes so no markup is parsed. */

const SVG = "http://www.w3.org/2000/svg";

const SHAPES = {
  tick: [["path", { d: "M4 12.5l4.5 4.5L19 6.5", fill: "none" }]],
  ticks: [
    ["path", { d: "M1.5 12.5L6 17 16.5 6.5", fill: "none" }],
    ["path", { d: "M11 16l1 1L22.5 6.5", fill: "none" }],
  ],
  clock: [
    ["circle", { cx: 12, cy: 12, r: 8.5, fill: "none" }],
    ["path", { d: "M12 7.5V12l3 2", fill: "none" }],
  ],
  send: [["path", { d: "M3 20.5L21.5 12 3 3.5l.01 6.6L16 12 3.01 13.9z", stroke: "none" }]],
  mic: [
    ["rect", { x: 9, y: 2.5, width: 6, height: 11.5, rx: 3, stroke: "none" }],
    ["path", { d: "M5.5 11a6.5 6.5 0 0013 0M12 17.5V21", fill: "none" }],
  ],
  clip: [
    [
      "path",
      {
        d: "M16.5 6.5l-7.8 7.8a1.8 1.8 0 002.6 2.6l8-8a3.6 3.6 0 00-5.1-5.1l-8.1 8.1a5.4 5.4 0 007.6 7.6l6.9-6.9",
        fill: "none",
      },
    ],
  ],
  camera: [
    ["path", { d: "M3.5 8.5a2 2 0 012-2h2.3l1.7-2.2h5l1.7 2.2h2.3a2 2 0 012 2v9.5a2 2 0 01-2 2h-13a2 2 0 01-2-2z" }],
    ["circle", { cx: 12, cy: 13, r: 3.6, fill: "none" }],
  ],
  sticker: [
    ["path", { d: "M20.5 12.5a8.5 8.5 0 11-9-9h1a8 8 0 018 8z", fill: "none" }],
    ["path", { d: "M8.5 14.5a4.2 4.2 0 007 0", fill: "none" }],
    ["circle", { cx: 9.2, cy: 10, r: 1.1, stroke: "none" }],
    ["circle", { cx: 14.8, cy: 10, r: 1.1, stroke: "none" }],
  ],
  image: [
    ["rect", { x: 3.5, y: 4.5, width: 17, height: 15, rx: 2, fill: "none" }],
    ["path", { d: "M3.5 16.5l5-5 4 4 2.5-2.5 5.5 5", fill: "none" }],
    ["circle", { cx: 15.5, cy: 9, r: 1.6, stroke: "none" }],
  ],
  pin: [
    ["path", { d: "M12 21.5s-6.5-6.6-6.5-11.5a6.5 6.5 0 0113 0c0 4.9-6.5 11.5-6.5 11.5z" }],
    ["circle", { cx: 12, cy: 10, r: 2.4, fill: "#fff", stroke: "none" }],
  ],
  play: [["path", { d: "M7.5 4.8v14.4L19 12z", stroke: "none" }]],
  pause: [
    ["rect", { x: 6.5, y: 5, width: 3.8, height: 14, rx: 1, stroke: "none" }],
    ["rect", { x: 13.7, y: 5, width: 3.8, height: 14, rx: 1, stroke: "none" }],
  ],
  external: [["path", { d: "M13.5 4.5h6v6M19.5 4.5l-9 9M17.5 14v4.5a1.5 1.5 0 01-1.5 1.5H6A1.5 1.5 0 014.5 18.5V8A1.5 1.5 0 016 6.5h4.5", fill: "none" }]],
  list: [["path", { d: "M4 6.5h16M4 12h16M4 17.5h16", fill: "none" }]],
  reply: [["path", { d: "M10 5.5L3.5 12l6.5 6.5M4 12h9.5a7 7 0 017 7", fill: "none" }]],
  back: [["path", { d: "M20 12H5M11 5.5L4.5 12l6.5 6.5", fill: "none" }]],
  dots: [
    ["circle", { cx: 12, cy: 5.5, r: 1.7, stroke: "none" }],
    ["circle", { cx: 12, cy: 12, r: 1.7, stroke: "none" }],
    ["circle", { cx: 12, cy: 18.5, r: 1.7, stroke: "none" }],
  ],
  video: [
    ["rect", { x: 2.5, y: 6.5, width: 13, height: 11, rx: 2, fill: "none" }],
    ["path", { d: "M15.5 10.5l6-3.5v10l-6-3.5z", fill: "none" }],
  ],
  phone: [
    [
      "path",
      {
        d: "M6.6 3.5h2.6l1.5 4-2 1.3a11 11 0 006.5 6.5l1.3-2 4 1.5v2.6a2 2 0 01-2.1 2A16.5 16.5 0 014.6 5.6a2 2 0 012-2.1z",
        fill: "none",
      },
    ],
  ],
  close: [["path", { d: "M6 6l12 12M18 6L6 18", fill: "none" }]],
  bang: [
    ["circle", { cx: 12, cy: 12, r: 10, stroke: "none" }],
    ["path", { d: "M12 6.5v7", stroke: "#fff", "stroke-width": 2.4, fill: "none" }],
    ["circle", { cx: 12, cy: 17.2, r: 1.4, fill: "#fff", stroke: "none" }],
  ],
  lock: [
    ["rect", { x: 5.5, y: 10.5, width: 13, height: 10, rx: 2, stroke: "none" }],
    ["path", { d: "M8.5 10.5V8a3.5 3.5 0 017 0v2.5", fill: "none" }],
  ],
};

/**
 * @param {keyof typeof SHAPES} name
 * @param {string} [className]
 * @returns {SVGSVGElement}
 */
export function icon(name, className) {
  const shapes = SHAPES[name];
  if (!shapes) throw new Error(`unknown icon "${name}"`);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", className ? `icon icon-${name} ${className}` : `icon icon-${name}`);
  for (const [tag, attributes] of shapes) {
    const shape = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) shape.setAttribute(key, String(value));
    svg.append(shape);
  }
  return svg;
}

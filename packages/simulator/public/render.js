/**
 * One chat message as WhatsApp draws it: a bubble (the shopper's on the right in green, the bot's on
 * the left in white), its time and ticks in the corner, and the interactive parts under the body.
 * The data-testid attributes are the browser tests' contract (docs in packages/simulator).
 */
import { parseWhatsApp } from "./format.js";
import { icon } from "./icons.js";

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });

const STATUS_LABEL = {
  sending: "Sending",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Failed",
};

/**
 * @typedef {object} Context
 * @property {string} shopName         the business's name, for quoted replies
 * @property {boolean} sameTab         links open in this tab (tests follow them)
 * @property {(id: string) => object | undefined} find   another message of the same chat
 * @property {(message: object, button: {id: string, title: string}) => void} onReplyButton
 * @property {(message: object, row: object) => void} onListRow
 */

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : timeFormat.format(date);
}

/** The chip between two days of a chat: "Today", "Yesterday" or the date (on the simulated clock). */
export function dayLabel(iso, nowMs) {
  const day = startOfDay(new Date(iso));
  const today = startOfDay(new Date(nowMs));
  const days = Math.round((today - day) / 86_400_000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return dayFormat.format(day);
}

export function dayKey(iso) {
  return startOfDay(new Date(iso)).toISOString();
}

function startOfDay(date) {
  const day = new Date(date);
  day.setHours(0, 0, 0, 0);
  return day;
}

/** Text without WhatsApp's formatting markers, as WhatsApp shows it in previews. */
export function plain(text) {
  const flatten = (nodes) =>
    nodes
      .map((node) => {
        if (node.type === "br") return " ";
        if ("children" in node) return flatten(node.children);
        return node.text;
      })
      .join("");
  return flatten(parseWhatsApp(text ?? ""));
}

/** A one-line description of a message, for the shopper list and for quoted replies. */
export function summary(message) {
  return plain(describe(message));
}

function describe(message) {
  switch (message.type) {
    case "image":
      return `📷 ${message.caption || message.text || "Photo"}`;
    case "audio":
    case "voice":
      return "🎤 Voice message";
    case "sticker":
      return "💟 Sticker";
    case "location":
      return `📍 ${message.location?.name || "Location"}`;
    case "cta_url":
      return message.text || message.cta?.displayText || "Link";
    default:
      return message.text || message.header || message.caption || `(${message.type})`;
  }
}

/** WhatsApp-formatted text as DOM nodes. */
export function formatted(text, sameTab) {
  const fragment = document.createDocumentFragment();
  appendNodes(fragment, parseWhatsApp(text), sameTab);
  return fragment;
}

const TAGS = { bold: "strong", italic: "em", strike: "s", code: "code" };

function appendNodes(parent, nodes, sameTab) {
  for (const node of nodes) {
    if (node.type === "text") parent.append(node.text);
    else if (node.type === "br") parent.append(document.createElement("br"));
    else if (node.type === "mono") parent.append(el("code", "mono", node.text));
    else if (node.type === "link") parent.append(externalLink(node.href, node.text, sameTab));
    else {
      const tag = el(TAGS[node.type]);
      appendNodes(tag, node.children, sameTab);
      parent.append(tag);
    }
  }
}

function externalLink(href, text, sameTab, className) {
  const link = el("a", className, text);
  link.href = href;
  if (!sameTab) {
    link.target = "_blank";
    link.rel = "noopener noreferrer";
  }
  return link;
}

/** The fields that change the drawing of a message except its delivery state (patched in place). */
export function contentKey(message) {
  const { status, attempts, error, traceUrl, ...content } = message;
  return JSON.stringify(content);
}

/**
 * @param {object} message  a ChatMessage
 * @param {Context} context
 * @param {{ tail: boolean }} options  the first of a run of messages from one side has the tail
 */
export function renderMessage(message, context, { tail }) {
  const row = el("div", `message from-${message.from}`);
  row.dataset.testid = "message";
  row.dataset.from = message.from;
  row.dataset.type = message.type;
  row.dataset.wamid = message.id;
  if (tail) row.classList.add("tail");

  const sticker = message.type === "sticker";
  const bubble = el("div", sticker ? "bubble bubble-sticker" : "bubble");
  const body = el("div", "bubble-body");
  bubble.append(body);
  row.append(bubble);

  if (message.replyTo) body.append(quote(message.replyTo, context));
  if (message.header) body.append(el("p", "header", message.header));
  const host = content(body, message, context);
  if (message.footer) {
    const footer = el("p", "footer", message.footer);
    body.append(footer);
    placeMeta(body, footer, message, context);
  } else {
    placeMeta(body, host, message, context);
  }
  const actions = actionsOf(message, context, row);
  if (actions) bubble.append(actions);
  applyStatus(row, message, context);
  return row;
}

/** Redraws what a status change touches (ticks, attempts, error, trace link) without a new node. */
export function applyStatus(row, message, context) {
  if (message.status) row.dataset.status = message.status;
  else delete row.dataset.status;
  if (message.attempts !== undefined) row.dataset.attempts = String(message.attempts);
  row.classList.toggle("failed", message.status === "failed");
  const body = row.querySelector(".bubble-body");
  for (const old of body.querySelectorAll(":scope .meta")) {
    const fresh = meta(message, context, old.classList.contains("meta-spacer"));
    fresh.classList.toggle("meta-overlay", old.classList.contains("meta-overlay"));
    old.replaceWith(fresh);
  }
  row.querySelector(":scope > .failure")?.remove();
  if (message.status === "failed") {
    const reason = message.error ?? "no reason given";
    const line = el("p", "failure");
    line.append(
      icon("bang"),
      el("span", "", message.from === "shopper" ? `Not delivered to the bot: ${reason}` : `Failed: ${reason}`),
    );
    const sheet = row.querySelector(":scope > .sheet-layer");
    row.insertBefore(line, sheet);
  }
}

function quote(replyTo, context) {
  const quoted = context.find(replyTo);
  const box = el("div", "quote");
  const author = quoted?.from === "shopper" ? "You" : context.shopName;
  box.append(el("span", "quote-author", author), el("span", "quote-text", quoted ? summary(quoted) : "…"));
  return box;
}

/** Draws the message's own content and returns the paragraph the time should sit at the end of. */
function content(body, message, context) {
  switch (message.type) {
    case "image":
      return image(body, message, context);
    case "sticker":
      return sticker(body, message);
    case "audio":
    case "voice":
      body.append(voice(message));
      return null;
    case "location":
      return location(body, message, context);
    case "list_reply":
      return listReply(body, message, context);
    default:
      return text(body, message.text ?? message.title, message, context);
  }
}

function text(body, value, message, context) {
  if (value === undefined || value === "") {
    if (message.header || message.footer) return null;
    const unsupported = el("p", "text unsupported", `This message type (${message.type}) is not shown here.`);
    body.append(unsupported);
    return unsupported;
  }
  const paragraph = el("p", "text");
  paragraph.dataset.testid = "message-text";
  paragraph.append(formatted(value, context.sameTab));
  body.append(paragraph);
  return paragraph;
}

function image(body, message, context) {
  const frame = el("a", "image-frame loading");
  frame.href = message.imageUrl ?? "#";
  if (!context.sameTab) frame.target = "_blank";
  const img = el("img");
  img.dataset.testid = "message-image";
  img.alt = message.caption || (message.from === "bot" ? "Image from the shop" : "Your image");
  img.decoding = "async";
  img.addEventListener("load", () => frame.classList.remove("loading"), { once: true });
  img.addEventListener(
    "error",
    () => {
      frame.classList.replace("loading", "broken");
      frame.title = "The image could not be loaded";
    },
    { once: true },
  );
  if (message.imageUrl) img.src = message.imageUrl;
  frame.append(img);
  body.append(frame);
  body.classList.add("has-media");
  const caption = message.caption ?? message.text;
  return caption ? text(body, caption, message, context) : null;
}

function sticker(body, message) {
  const img = el("img", "sticker");
  img.dataset.testid = "message-sticker";
  img.alt = "Sticker";
  if (message.imageUrl) img.src = message.imageUrl;
  body.append(img);
  return null;
}

// Bar heights drawn from the message id, so one voice note keeps its shape across redraws.
function waveform(seed, count) {
  let hash = 2166136261;
  for (const char of seed) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
  const heights = [];
  for (let i = 0; i < count; i += 1) {
    hash = Math.imul(hash ^ (hash >>> 13), 0x5bd1e995) >>> 0;
    heights.push(20 + (hash % 80));
  }
  return heights;
}

function voice(message) {
  const box = el("div", "voice");
  const play = el("button", "voice-play");
  play.type = "button";
  play.setAttribute("aria-label", "Play voice message");
  play.append(icon("play"));
  const track = el("div", "voice-track");
  const wave = el("div", "wave");
  for (const height of waveform(message.id, 32)) {
    const bar = el("span");
    bar.style.height = `${height}%`;
    wave.append(bar);
  }
  const duration = el("span", "voice-duration", "Voice message");
  track.append(wave, duration);
  const avatar = el("span", "voice-avatar");
  avatar.append(icon("mic"));
  box.append(play, track, avatar);

  const url = message.mediaUrl ?? message.audioUrl ?? message.imageUrl;
  if (!url) {
    play.disabled = true;
    play.title = "The simulator gave no audio for this voice note";
    return box;
  }
  const audio = new Audio();
  audio.preload = "metadata";
  audio.src = url;
  const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
  audio.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(audio.duration)) duration.textContent = clock(audio.duration);
  });
  const bars = [...wave.children];
  const showProgress = (fraction) => {
    const played = Math.round(fraction * bars.length);
    bars.forEach((bar, index) => {
      bar.classList.toggle("played", index < played);
    });
  };
  audio.addEventListener("timeupdate", () => {
    if (Number.isFinite(audio.duration) && audio.duration > 0) showProgress(audio.currentTime / audio.duration);
  });
  const setPlaying = (playing) => {
    play.replaceChildren(icon(playing ? "pause" : "play"));
    play.setAttribute("aria-label", playing ? "Pause voice message" : "Play voice message");
  };
  audio.addEventListener("play", () => setPlaying(true));
  audio.addEventListener("pause", () => setPlaying(false));
  audio.addEventListener("ended", () => showProgress(0));
  audio.addEventListener("error", () => {
    play.disabled = true;
    play.title = "This voice note could not be loaded";
  });
  play.addEventListener("click", () => {
    if (audio.paused) audio.play().catch(() => setPlaying(false));
    else audio.pause();
  });
  return box;
}

function location(body, message, context) {
  const { latitude, longitude, name } = message.location ?? {};
  const map = el("a", "map");
  const hasPoint = Number.isFinite(latitude) && Number.isFinite(longitude);
  if (hasPoint) {
    map.href = `https://www.openstreetmap.org/?mlat=${latitude}&mlon=${longitude}#map=16/${latitude}/${longitude}`;
    if (!context.sameTab) {
      map.target = "_blank";
      map.rel = "noopener noreferrer";
    }
  }
  map.setAttribute("aria-label", `Map: ${name || "shared location"}`);
  map.append(el("span", "map-park"), el("span", "map-water"), icon("pin", "map-pin"));
  body.append(map);
  body.classList.add("has-media");
  const place = el("p", "place");
  if (name) place.append(el("strong", "place-name", name));
  if (hasPoint) place.append(el("span", "place-coords", `${latitude.toFixed(5)}, ${longitude.toFixed(5)}`));
  body.append(place);
  return place;
}

function listReply(body, message, context) {
  const paragraph = text(body, message.text ?? message.title, message, context);
  if (message.description) body.append(el("p", "reply-description", message.description));
  return message.description ? body.lastElementChild : paragraph;
}

function placeMeta(body, host, message, context) {
  if (host) {
    // A blank at the end of the last line reserves room, so the time in the corner never covers
    // text: WhatsApp's own trick.
    host.append(meta(message, context, true));
    body.append(meta(message, context, false));
    return;
  }
  const overlay = meta(message, context, false);
  if (body.querySelector(".image-frame, .map, .sticker")) overlay.classList.add("meta-overlay");
  body.append(overlay);
}

const attemptsText = (message) => ((message.attempts ?? 0) > 1 ? `×${message.attempts} attempts` : "");

function meta(message, context, spacer) {
  if (spacer) {
    // Empty, sized like the visible corner: a text copy would show up twice in the message's text.
    const box = el("span", "meta meta-spacer");
    const characters = attemptsText(message).length + formatTime(message.at).length;
    const icons = (message.traceUrl ? 17 : 0) + (message.status ? 20 : 0);
    box.style.width = `calc(${characters}ch + ${icons + 6}px)`;
    return box;
  }
  const box = el("span", "meta");
  if (attemptsText(message)) box.append(el("span", "attempts", attemptsText(message)));
  if (message.traceUrl) {
    const trace = externalLink(message.traceUrl, "🔍", context.sameTab, "trace");
    trace.dataset.testid = "trace-link";
    trace.title = "Open this message's trace";
    trace.setAttribute("aria-label", "Trace of this message");
    box.append(trace);
  }
  box.append(el("span", "time", formatTime(message.at)));
  const status = statusIcon(message);
  if (status) box.append(status);
  return box;
}

function statusIcon(message) {
  const { status, attempts } = message;
  if (!status || !STATUS_LABEL[status]) return null;
  const names = { sending: "clock", sent: "tick", delivered: "ticks", read: "ticks", failed: "bang" };
  const box = el("span", `ticks status-${status}`);
  box.setAttribute("role", "img");
  const label = STATUS_LABEL[status];
  box.setAttribute("aria-label", (attempts ?? 0) > 1 ? `${label} ×${attempts} attempts` : label);
  box.title = box.getAttribute("aria-label");
  box.append(icon(names[status]));
  return box;
}

function actionsOf(message, context, row) {
  if (message.buttons?.length) {
    const actions = el("div", "actions");
    for (const button of message.buttons) {
      const tap = el("button", "action");
      tap.type = "button";
      tap.dataset.testid = "reply-button";
      tap.append(icon("reply"), button.title);
      tap.addEventListener("click", () => context.onReplyButton(message, button));
      actions.append(tap);
    }
    return actions;
  }
  if (message.list) {
    const actions = el("div", "actions");
    const open = el("button", "action");
    open.type = "button";
    open.dataset.testid = "list-open";
    open.setAttribute("aria-haspopup", "dialog");
    open.append(icon("list"), message.list.button);
    open.addEventListener("click", () => openList(row, message, context, open));
    actions.append(open);
    return actions;
  }
  if (message.cta) {
    const actions = el("div", "actions");
    const link = externalLink(message.cta.url, undefined, context.sameTab, "action");
    link.dataset.testid = "cta-link";
    link.append(icon("external"), message.cta.displayText);
    actions.append(link);
    return actions;
  }
  return null;
}

/**
 * The list's bottom sheet. It lives inside the message (the rows belong to it) and exists only while
 * open, so a chat with several lists holds the rows of one.
 */
function openList(row, message, context, opener) {
  row.ownerDocument.querySelector(".sheet-layer")?.dispatchEvent(new Event("close"));
  const layer = el("div", "sheet-layer");
  const backdrop = el("div", "sheet-backdrop");
  const sheet = el("div", "sheet");
  const titleId = `sheet-${message.id.replace(/[^\w-]/g, "_")}`;
  sheet.setAttribute("role", "dialog");
  sheet.setAttribute("aria-modal", "true");
  sheet.setAttribute("aria-labelledby", titleId);
  const head = el("header", "sheet-head");
  const close = el("button", "sheet-close");
  close.type = "button";
  close.setAttribute("aria-label", "Close the list");
  close.append(icon("close"));
  const title = el("h3", "", message.list.button);
  title.id = titleId;
  head.append(close, title);
  const scroller = el("div", "sheet-body");
  message.list.sections.forEach((section, sectionIndex) => {
    const group = el("section", "sheet-section");
    if (section.title) group.append(el("h4", "", section.title));
    const rows = el("ul");
    section.rows.forEach((choice, rowIndex) => {
      const item = el("li", "sheet-row");
      const pick = el("button", "list-row", choice.title);
      pick.type = "button";
      pick.dataset.testid = "list-row";
      item.append(pick);
      if (choice.description) {
        const description = el("span", "sheet-row-description", choice.description);
        description.id = `${titleId}-${sectionIndex}-${rowIndex}`;
        pick.setAttribute("aria-describedby", description.id);
        item.append(description);
      }
      item.append(el("span", "radio"));
      pick.addEventListener("click", () => {
        item.classList.add("picked");
        dismiss();
        context.onListRow(message, choice);
      });
      rows.append(item);
    });
    group.append(rows);
    scroller.append(group);
  });
  sheet.append(head, scroller);
  layer.append(backdrop, sheet);

  const dismiss = () => {
    layer.remove();
    opener.focus({ preventScroll: true });
  };
  layer.addEventListener("close", dismiss);
  backdrop.addEventListener("click", dismiss);
  close.addEventListener("click", dismiss);
  layer.addEventListener("keydown", (event) => {
    if (event.key === "Escape") dismiss();
  });
  row.append(layer);
  (scroller.querySelector("button") ?? close).focus({ preventScroll: true });
}

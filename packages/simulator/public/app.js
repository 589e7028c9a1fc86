/**
 * The simulator's page: shoppers on the left, the open chat in a phone in the middle, the failure
 * toggles, clock and log on the right. Everything shown comes from `/sim/api/state` and the event
 * stream; the page keeps no state of its own beyond the open chat, drafts and scroll positions.
 */
import { api, followEvents } from "./api.js";
import { icon } from "./icons.js";
import { applyStatus, contentKey, dayKey, dayLabel, el, formatTime, renderMessage, summary } from "./render.js";

const sameTab = new URLSearchParams(location.search).get("sameTab") === "1";
const ACTIVE_KEY = "taituri-simulator-active-shopper";
const THREE_HOURS_MS = 3 * 60 * 60 * 1000;
// Where "send a location" puts the shopper: a real place, so the map link shows something.
const SHARED_LOCATION = { latitude: 60.16749, longitude: 24.95228, name: "Kauppatori, Helsinki" };
const LOG_LIMIT = 500;

const $ = (selector) => {
  const node = document.querySelector(selector);
  if (!node) throw new Error(`the page has no ${selector}`);
  return node;
};

const ui = {
  tabs: $(".tabs"),
  railEmpty: $(".rail-empty"),
  newShopper: $('[data-testid="new-shopper"]'),
  form: $("#new-shopper-form"),
  formError: $(".form-error"),
  businessField: $(".business-field"),
  shopName: $(".shop-name"),
  shopNumber: $(".shop-number"),
  shopAvatar: $(".shop-avatar"),
  chat: $('[data-testid="chat"]'),
  toast: $(".toast"),
  composer: $(".composer"),
  input: $('[data-testid="composer-input"]'),
  attach: $('[data-testid="attach"]'),
  attachMenu: $("#attach-menu"),
  connection: $(".connection"),
  statusTime: $(".statusbar-time"),
  clock: $('[data-testid="clock"]'),
  clockNow: $(".clock-now"),
  log: $('[data-testid="sim-log"]'),
  toggles: {
    deliver: $('[data-testid="toggle-deliver"]'),
    concurrent: $('[data-testid="toggle-concurrent"]'),
    ackDelayMs: $('[data-testid="toggle-ack-delay"]'),
    image: $('[data-testid="toggle-image"]'),
    rateLimit: $('[data-testid="toggle-rate-limit"]'),
    windowClosed: $('[data-testid="toggle-window"]'),
  },
};

const state = {
  /** @type {Map<string, {shopper: object, messages: Map<string, object>}>} */
  chats: new Map(),
  businessNumbers: [],
  toggles: undefined,
  clockOffsetMs: 0,
  activeId: sessionStorage.getItem(ACTIVE_KEY) ?? undefined,
  drafts: new Map(),
  scroll: new Map(),
};

// ---------------------------------------------------------------- state from the server

let buffered = null;
let syncing = false;

async function resync() {
  if (syncing) return;
  syncing = true;
  // Events that arrive while the snapshot loads are replayed on top of it, never lost.
  buffered = [];
  try {
    const snapshot = await api.state();
    applySnapshot(snapshot);
    const pending = buffered;
    buffered = null;
    const logged = new Set(snapshot.log.map((line) => JSON.stringify(line)));
    for (const [name, data] of pending) {
      if (name === "log" && logged.has(JSON.stringify(data))) continue;
      applyEvent(name, data, { afterSnapshot: true });
    }
  } catch (error) {
    buffered = null;
    showToast(`Could not load the simulator's state: ${error.message}`);
    setTimeout(resync, 2000);
  } finally {
    syncing = false;
  }
}

function applySnapshot(snapshot) {
  state.chats.clear();
  for (const { messages, ...shopper } of snapshot.shoppers) {
    state.chats.set(shopper.id, { shopper, messages: new Map(messages.map((m) => [m.id, m])) });
  }
  state.businessNumbers = snapshot.businessNumbers ?? [];
  state.toggles = snapshot.toggles;
  state.clockOffsetMs = snapshot.clockOffsetMs ?? 0;
  if (!state.chats.has(state.activeId)) state.activeId = state.chats.keys().next().value;
  ui.log.replaceChildren(...snapshot.log.map(logLine));
  ui.log.scrollTop = ui.log.scrollHeight;
  renderBusinessChoice();
  renderToggles();
  renderClock();
  renderRail();
  renderChat();
  markRead({ always: true });
}

const STATUS_RANK = { sending: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

function applyEvent(name, data, { afterSnapshot = false } = {}) {
  switch (name) {
    case "shopper": {
      const { messages: _ignored, ...shopper } = data;
      const chat = state.chats.get(shopper.id);
      if (chat) chat.shopper = shopper;
      else state.chats.set(shopper.id, { shopper, messages: new Map() });
      if (!state.activeId) select(shopper.id);
      else renderRail();
      if (shopper.id === state.activeId) renderHeader();
      return;
    }
    case "message": {
      const chat = state.chats.get(data.shopperId);
      if (!chat) {
        // A message for a shopper this page has not seen: the snapshot is behind, reload it.
        resync();
        return;
      }
      const known = chat.messages.get(data.message.id);
      // An event queued while the snapshot loaded may be older than the snapshot: never go back.
      if (afterSnapshot && known && isOlder(data.message, known)) return;
      upsertMessage(chat, data.message);
      return;
    }
    case "log":
      appendLog(data);
      return;
    case "toggles":
      state.toggles = data;
      renderToggles();
      return;
    case "clock":
      state.clockOffsetMs = data.offsetMs;
      renderClock();
      return;
    default:
      console.warn(`unknown simulator event "${name}"`);
  }
}

function isOlder(incoming, known) {
  return (
    (STATUS_RANK[incoming.status] ?? -1) < (STATUS_RANK[known.status] ?? -1) ||
    (incoming.attempts ?? 0) < (known.attempts ?? 0)
  );
}

function upsertMessage(chat, message) {
  chat.messages.set(message.id, message);
  if (chat.shopper.id === state.activeId) {
    showMessage(message);
    if (message.from === "bot") markRead();
  }
  renderRail();
}

// ---------------------------------------------------------------- shoppers (left rail)

function initials(name) {
  const words = String(name)
    .replace(/[^\p{L}\p{N}\s]/gu, "")
    .split(/\s+/u)
    .filter(Boolean);
  const letters = words.length > 1 ? [words[0][0], words.at(-1)[0]] : [...(words[0] ?? "?")].slice(0, 2);
  return letters.join("").toUpperCase();
}

// Avatar colours from WhatsApp's palette, picked by the id so a shopper keeps theirs.
const AVATAR_COLOURS = ["#25d366", "#34b7f1", "#ff8a65", "#a77bca", "#f4b400", "#00a884", "#e57373", "#5c6bc0"];
function avatarColour(id) {
  let sum = 0;
  for (const char of id) sum = (sum * 31 + char.charCodeAt(0)) >>> 0;
  return AVATAR_COLOURS[sum % AVATAR_COLOURS.length];
}

function identity(shopper) {
  if (shopper.waId) return `+${shopper.waId}${shopper.userId ? " · BSUID" : ""}`;
  return "BSUID only";
}

function unreadCount(chat) {
  let count = 0;
  for (const message of chat.messages.values()) {
    if (message.from === "bot" && (message.status === "sent" || message.status === "delivered")) count += 1;
  }
  return count;
}

function renderRail() {
  const focusedId = document.activeElement?.closest?.('[role="tab"]')?.dataset.shopper;
  const tabs = [];
  for (const chat of state.chats.values()) {
    const { shopper } = chat;
    const active = shopper.id === state.activeId;
    const last = [...chat.messages.values()].at(-1);
    const tab = el("button", active ? "tab active" : "tab");
    tab.type = "button";
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-selected", String(active));
    tab.setAttribute("aria-controls", "chat");
    tab.tabIndex = active ? 0 : -1;
    tab.dataset.testid = "shopper-tab";
    tab.dataset.shopper = shopper.id;
    const avatar = el("span", "avatar", initials(shopper.name));
    avatar.style.background = avatarColour(shopper.id);
    avatar.setAttribute("aria-hidden", "true");
    const main = el("span", "tab-main");
    const top = el("span", "tab-line");
    top.append(el("span", "tab-name", shopper.name), el("span", "tab-time", last ? formatTime(last.at) : ""));
    const who = el("span", "tab-identity", identity(shopper));
    if (shopper.userId) who.title = `BSUID ${shopper.userId}`;
    const bottom = el("span", "tab-line");
    const preview = el("span", "tab-last", last ? summary(last) : "No messages yet");
    bottom.append(preview);
    const unread = active ? 0 : unreadCount(chat);
    if (unread > 0) {
      tab.classList.add("has-unread");
      const badge = el("span", "unread", String(unread));
      badge.setAttribute("aria-label", `${unread} unread`);
      bottom.append(badge);
    }
    main.append(top, who, bottom);
    tab.append(avatar, main);
    tab.addEventListener("click", () => select(shopper.id));
    tabs.push(tab);
  }
  ui.tabs.replaceChildren(...tabs);
  ui.railEmpty.hidden = tabs.length > 0;
  if (focusedId) ui.tabs.querySelector(`[data-shopper="${CSS.escape(focusedId)}"]`)?.focus();
}

ui.tabs.addEventListener("keydown", (event) => {
  const moves = { ArrowDown: 1, ArrowUp: -1 };
  if (!(event.key in moves)) return;
  const ids = [...state.chats.keys()];
  const next = ids[(ids.indexOf(state.activeId) + moves[event.key] + ids.length) % ids.length];
  if (next === undefined) return;
  event.preventDefault();
  select(next);
  ui.tabs.querySelector(`[data-shopper="${CSS.escape(next)}"]`)?.focus();
});

function select(id) {
  if (state.activeId && state.activeId !== id) {
    state.drafts.set(state.activeId, ui.input.value);
    state.scroll.set(state.activeId, { top: ui.chat.scrollTop, stick: stickToBottom });
  }
  state.activeId = id;
  sessionStorage.setItem(ACTIVE_KEY, id);
  ui.input.value = state.drafts.get(id) ?? "";
  syncComposer();
  renderRail();
  renderChat();
  markRead({ always: true });
}

// ---------------------------------------------------------------- new shopper form

function renderBusinessChoice() {
  const select = ui.businessField.querySelector("select");
  select.replaceChildren(
    ...state.businessNumbers.map((number) => {
      const option = el("option", "", `${number.name ?? "Shop"} · ${displayNumber(number.displayPhoneNumber)}`);
      option.value = number.phoneNumberId;
      return option;
    }),
  );
  ui.businessField.hidden = state.businessNumbers.length < 2;
}

function openForm(open) {
  ui.form.hidden = !open;
  ui.newShopper.setAttribute("aria-expanded", String(open));
  ui.formError.hidden = true;
  if (open) ui.form.elements.name.focus();
}

ui.newShopper.addEventListener("click", () => openForm(ui.form.hidden));
ui.form.querySelector('[data-action="cancel"]').addEventListener("click", () => {
  openForm(false);
  ui.newShopper.focus();
});

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = ui.form.elements;
  const name = fields.name.value.trim();
  // People type numbers as they read them: "+1 (555) 000-1111" means 15550001111.
  const waId = fields.phone.value.replace(/[\s()+.-]/gu, "");
  const userId = fields.bsuid.value.trim();
  const formError = (text) => {
    ui.formError.textContent = text;
    ui.formError.hidden = false;
  };
  if (!name) return formError("Give the shopper a name.");
  if (!waId && !userId) return formError("Give a phone number, a BSUID, or both.");
  const body = { name };
  if (waId) body.waId = waId;
  if (userId) body.userId = userId;
  if (!ui.businessField.hidden) body.phoneNumberId = fields.business.value;
  const create = ui.form.querySelector('[data-testid="new-shopper-create"]');
  create.disabled = true;
  try {
    const { messages = [], ...shopper } = await api.createShopper(body);
    const chat = state.chats.get(shopper.id);
    if (chat) chat.shopper = shopper;
    else state.chats.set(shopper.id, { shopper, messages: new Map(messages.map((m) => [m.id, m])) });
    ui.form.reset();
    openForm(false);
    select(shopper.id);
    ui.input.focus();
  } catch (error) {
    formError(error.message);
  } finally {
    create.disabled = false;
  }
});

// ---------------------------------------------------------------- the chat

let rendered = new Map(); // wamid -> { row, key }
let lastShown; // the last message drawn: its side and day decide the tail and the day chips
let stickToBottom = true;

function activeChat() {
  return state.activeId ? state.chats.get(state.activeId) : undefined;
}

function business(shopper) {
  return (
    state.businessNumbers.find((number) => number.phoneNumberId === shopper?.phoneNumberId) ??
    state.businessNumbers[0]
  );
}

function displayNumber(number) {
  return /^\d+$/u.test(number ?? "") ? `+${number}` : (number ?? "");
}

function renderHeader() {
  const shop = business(activeChat()?.shopper);
  const name = shop?.name ?? "Taituri";
  ui.shopName.textContent = name;
  ui.shopNumber.textContent = ui.connection.hidden ? displayNumber(shop?.displayPhoneNumber) : "Connecting…";
  ui.shopAvatar.textContent = initials(name);
}

const chatContext = {
  get shopName() {
    return business(activeChat()?.shopper)?.name ?? "Taituri";
  },
  sameTab,
  find: (id) => activeChat()?.messages.get(id),
  onReplyButton: (message, button) =>
    send({ type: "button_reply", replyTo: message.id, id: button.id, title: button.title }),
  onListRow: (message, row) =>
    send({
      type: "list_reply",
      replyTo: message.id,
      id: row.id,
      title: row.title,
      ...(row.description ? { description: row.description } : {}),
    }),
};

function renderChat() {
  renderHeader();
  rendered = new Map();
  lastShown = undefined;
  const chat = activeChat();
  const notice = el("p", "notice");
  notice.append(
    icon("lock"),
    chat
      ? "Messages here stay on this machine: the simulator plays WhatsApp for the shop's services."
      : "Add a shopper on the left to start a chat.",
  );
  ui.chat.replaceChildren(notice);
  setComposerEnabled(Boolean(chat));
  if (!chat) return;
  for (const message of chat.messages.values()) showMessage(message, { initial: true });
  const saved = state.scroll.get(chat.shopper.id);
  if (saved?.stick === false) {
    stickToBottom = false;
    ui.chat.scrollTop = saved.top;
  } else scrollToBottom();
}

function showMessage(message, { initial = false } = {}) {
  const known = rendered.get(message.id);
  const key = contentKey(message);
  if (known) {
    if (known.key === key) applyStatus(known.row, message, chatContext);
    else {
      const row = renderMessage(message, chatContext, { tail: known.row.classList.contains("tail") });
      known.row.replaceWith(row);
      rendered.set(message.id, { row, key });
    }
    // A failure line or a redrawn message can grow the chat under the newest message.
    if (stickToBottom) scrollToBottom();
    return;
  }
  const day = dayKey(message.at);
  if (lastShown?.day !== day) {
    ui.chat.append(el("p", "day", dayLabel(message.at, Date.now() + state.clockOffsetMs)));
  }
  const tail = lastShown?.from !== message.from || lastShown?.day !== day;
  const row = renderMessage(message, chatContext, { tail });
  ui.chat.append(row);
  rendered.set(message.id, { row, key });
  lastShown = { from: message.from, day };
  if (!initial && (stickToBottom || message.from === "shopper")) scrollToBottom();
}

// Whether the person reads the newest messages (then new ones scroll into view) or scrolled up to
// read older ones (then the chat stays put). Only their own scrolling changes it: by the time the
// event of a scroll made here arrives, a loading image may have grown the chat again.
let ownScroll = false;

function scrollToBottom() {
  stickToBottom = true;
  const before = ui.chat.scrollTop;
  ui.chat.scrollTop = ui.chat.scrollHeight;
  if (ui.chat.scrollTop !== before) ownScroll = true;
}

ui.chat.addEventListener("scroll", () => {
  if (ownScroll) {
    ownScroll = false;
    return;
  }
  stickToBottom = ui.chat.scrollHeight - ui.chat.scrollTop - ui.chat.clientHeight < 60;
});
// Images arrive after their bubble: keep the newest message in view while they load.
ui.chat.addEventListener(
  "load",
  () => {
    if (stickToBottom) scrollToBottom();
  },
  true,
);

// ---------------------------------------------------------------- read receipts

const readAsked = new Set();
let readTimer;

/**
 * The open chat is read, as on a phone: the bot's messages get their blue ticks. `always` on opening
 * a chat; otherwise only for bot messages not yet asked about, so a read that the server turns into
 * status events does not ask again.
 */
function markRead({ always = false } = {}) {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    const chat = activeChat();
    if (!chat || document.visibilityState !== "visible") return;
    const unread = [...chat.messages.values()].filter(
      (m) => m.from === "bot" && (m.status === "sent" || m.status === "delivered") && !readAsked.has(m.id),
    );
    if (!always && unread.length === 0) return;
    for (const message of unread) readAsked.add(message.id);
    try {
      await api.markRead(chat.shopper.id);
    } catch (error) {
      for (const message of unread) readAsked.delete(message.id);
      showToast(`Could not mark the chat read: ${error.message}`);
    }
  }, 150);
}

document.addEventListener("visibilitychange", () => markRead());

// ---------------------------------------------------------------- composer

function syncComposer() {
  ui.composer.classList.toggle("has-text", ui.input.value.trim() !== "");
}

function setComposerEnabled(enabled) {
  for (const control of ui.composer.querySelectorAll("input, button")) control.disabled = !enabled;
  if (!enabled) closeAttachMenu();
}

async function send(message) {
  const chat = activeChat();
  if (!chat) return;
  try {
    const sent = await api.send(chat.shopper.id, message);
    // The event stream brings the same message; whichever arrives first draws it, the other updates.
    const current = state.chats.get(chat.shopper.id);
    if (current && !(current.messages.get(sent.id) && isOlder(sent, current.messages.get(sent.id)))) {
      upsertMessage(current, sent);
    }
    return sent;
  } catch (error) {
    showToast(`Not sent: ${error.message}`);
    throw error;
  }
}

ui.input.addEventListener("input", syncComposer);
ui.composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.input.value;
  if (text.trim() === "") return;
  ui.input.value = "";
  syncComposer();
  try {
    await send({ type: "text", text });
  } catch {
    if (ui.input.value === "") {
      ui.input.value = text;
      syncComposer();
    }
  }
});

$('[data-testid="send-voice"]').append(icon("mic"));
$('[data-testid="composer-send"]').append(icon("send"));
ui.attach.append(icon("clip"));
$(".gallery").append(icon("image"));
$(".sticker-icon").append(icon("sticker"));
$(".location-icon").append(icon("pin"));
$(".chat-back").append(icon("back"));
$(".chat-head-icons").append(icon("video"), icon("phone"), icon("dots"));

const ignore = () => {};
$('[data-testid="send-voice"]').addEventListener("click", () => send({ type: "voice" }).catch(ignore));

function closeAttachMenu() {
  ui.attachMenu.hidden = true;
  ui.attach.setAttribute("aria-expanded", "false");
}

ui.attach.addEventListener("click", () => {
  const open = ui.attachMenu.hidden;
  ui.attachMenu.hidden = !open;
  ui.attach.setAttribute("aria-expanded", String(open));
  if (open) ui.attachMenu.querySelector("button").focus();
});
ui.attachMenu.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    closeAttachMenu();
    ui.attach.focus();
  }
});
document.addEventListener("click", (event) => {
  if (!ui.attachMenu.hidden && !event.target.closest("#attach-menu, [data-testid='attach']")) {
    closeAttachMenu();
  }
});
const attachments = {
  "send-image": { type: "image" },
  "send-sticker": { type: "sticker" },
  "send-location": { type: "location", ...SHARED_LOCATION },
};
for (const [testid, message] of Object.entries(attachments)) {
  $(`[data-testid="${testid}"]`).addEventListener("click", () => {
    closeAttachMenu();
    send(message).catch(ignore);
  });
}

// ---------------------------------------------------------------- toggles, clock, log

function renderToggles() {
  const toggles = state.toggles;
  if (!toggles) return;
  const { deliver, concurrent, ackDelayMs, image, rateLimit, windowClosed } = ui.toggles;
  deliver.value = String(toggles.deliver);
  concurrent.checked = toggles.concurrent;
  // Never overwrite a number being typed.
  if (document.activeElement !== ackDelayMs) ackDelayMs.value = String(toggles.ackDelayMs);
  image.value = toggles.image;
  rateLimit.checked = toggles.rateLimit;
  windowClosed.checked = toggles.windowClosed;
}

async function putToggle(partial) {
  try {
    state.toggles = await api.setToggles(partial);
  } catch (error) {
    showToast(`Toggle not changed: ${error.message}`);
  }
  renderToggles();
}

ui.toggles.deliver.addEventListener("change", () => putToggle({ deliver: Number(ui.toggles.deliver.value) }));
ui.toggles.concurrent.addEventListener("change", () =>
  putToggle({ concurrent: ui.toggles.concurrent.checked }),
);
ui.toggles.image.addEventListener("change", () => putToggle({ image: ui.toggles.image.value }));
ui.toggles.rateLimit.addEventListener("change", () => putToggle({ rateLimit: ui.toggles.rateLimit.checked }));
ui.toggles.windowClosed.addEventListener("change", () =>
  putToggle({ windowClosed: ui.toggles.windowClosed.checked }),
);
// The delay applies once typing pauses, not only when the field loses focus.
let ackDelayTimer;
function applyAckDelay() {
  clearTimeout(ackDelayTimer);
  const typed = ui.toggles.ackDelayMs.value;
  const value = Number(typed);
  if (typed.trim() === "" || !Number.isInteger(value) || value < 0) {
    showToast("The answer delay is a whole number of milliseconds, 0 or more.");
    ui.toggles.ackDelayMs.value = String(state.toggles?.ackDelayMs ?? 0);
    return;
  }
  if (value !== state.toggles?.ackDelayMs) putToggle({ ackDelayMs: value });
}
ui.toggles.ackDelayMs.addEventListener("input", () => {
  clearTimeout(ackDelayTimer);
  ackDelayTimer = setTimeout(applyAckDelay, 500);
});
ui.toggles.ackDelayMs.addEventListener("change", applyAckDelay);

function formatOffset(ms) {
  const sign = ms < 0 ? "−" : "+";
  const minutes = Math.round(Math.abs(ms) / 60_000);
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (hours === 0) return `${sign}${rest} min`;
  return rest === 0 ? `${sign}${hours} h` : `${sign}${hours} h ${String(rest).padStart(2, "0")} min`;
}

function renderClock() {
  const now = new Date(Date.now() + state.clockOffsetMs);
  ui.clock.textContent = formatOffset(state.clockOffsetMs);
  ui.clockNow.textContent = ` · simulated time ${formatTime(now.toISOString())}`;
  ui.statusTime.textContent = formatTime(now.toISOString());
}
setInterval(renderClock, 10_000);

$('[data-testid="clock-jump"]').addEventListener("click", async () => {
  try {
    const { offsetMs } = await api.jumpClock(THREE_HOURS_MS);
    state.clockOffsetMs = offsetMs;
    renderClock();
  } catch (error) {
    showToast(`The clock did not move: ${error.message}`);
  }
});

const logTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function logLine(line) {
  const item = el("li", `log-line kind-${line.kind}`);
  item.dataset.testid = "log-line";
  item.dataset.kind = line.kind;
  const at = new Date(line.at);
  const time = el("time", "log-time", Number.isNaN(at.getTime()) ? "" : logTime.format(at));
  time.dateTime = line.at;
  item.append(time, el("span", "log-kind", line.kind), el("span", "log-text", line.text));
  if (line.traceUrl) {
    const trace = el("a", "log-trace", "trace");
    trace.href = line.traceUrl;
    if (!sameTab) {
      trace.target = "_blank";
      trace.rel = "noopener noreferrer";
    }
    item.append(trace);
  }
  return item;
}

function appendLog(line) {
  const atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  ui.log.append(logLine(line));
  while (ui.log.childElementCount > LOG_LIMIT) ui.log.firstElementChild.remove();
  if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

// ---------------------------------------------------------------- notices

let toastTimer;
function showToast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, 6000);
}

function setConnected(connected) {
  ui.connection.hidden = connected;
  renderHeader();
}

// ---------------------------------------------------------------- start

syncComposer();
renderClock();
renderChat();
followEvents({
  onOpen: () => {
    setConnected(true);
    resync();
  },
  onDown: () => setConnected(false),
  onEvent: (name, data) => {
    if (buffered) buffered.push([name, data]);
    else applyEvent(name, data);
  },
});

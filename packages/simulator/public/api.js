/** The simulator's UI HTTP API (served by the same origin) and its live event stream. */

export class ApiError extends Error {}

async function call(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  // Every POST and PUT carries a JSON body, even an empty one: servers that parse JSON by content
  // type reject a declared JSON body that is empty.
  if (method !== "GET") {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(`the simulator did not answer ${method} ${path} (${error.message})`);
  }
  const text = await response.text();
  let data;
  try {
    data = text === "" ? undefined : JSON.parse(text);
  } catch {
    throw new ApiError(`${method} ${path} answered ${response.status} with a body that is not JSON`);
  }
  if (!response.ok) {
    throw new ApiError(data?.error ?? `${method} ${path} answered ${response.status}`);
  }
  return data;
}

const shopperPath = (id) => `/sim/api/shoppers/${encodeURIComponent(id)}`;

export const api = {
  state: () => call("GET", "/sim/api/state"),
  createShopper: (shopper) => call("POST", "/sim/api/shoppers", shopper),
  send: (shopperId, message) => call("POST", `${shopperPath(shopperId)}/messages`, message),
  markRead: (shopperId) => call("POST", `${shopperPath(shopperId)}/read`),
  setToggles: (toggles) => call("PUT", "/sim/api/toggles", toggles),
  jumpClock: (ms) => call("POST", "/sim/api/clock/jump", { ms }),
};

const EVENTS = ["shopper", "message", "log", "toggles", "clock"];

/**
 * Follows `/sim/api/events`. `onOpen` runs on every (re)connection, so the page can reload the whole
 * state: whatever happened while the simulator was down or restarting is only in that snapshot.
 */
export function followEvents({ onOpen, onEvent, onDown }) {
  let delayMs = 500;
  const connect = () => {
    const source = new EventSource("/sim/api/events");
    source.addEventListener("open", () => {
      delayMs = 500;
      onOpen();
    });
    for (const name of EVENTS) {
      source.addEventListener(name, (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          console.error(`simulator event "${name}" is not JSON`, event.data);
          return;
        }
        onEvent(name, data);
      });
    }
    source.addEventListener("error", () => {
      onDown();
      // The browser retries a dropped stream by itself; it gives up (CLOSED) only when an answer is
      // not an event stream, e.g. a proxy's error page while the simulator restarts.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, delayMs);
        delayMs = Math.min(delayMs * 2, 5000);
      }
    });
  };
  connect();
}

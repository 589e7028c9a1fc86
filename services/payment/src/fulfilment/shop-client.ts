import type { AttemptOutcome } from "./store.ts";

/** What one post told: the outcome and, if the shop answered, its status. */
export interface PostResult {
  outcome: Exclude<AttemptOutcome, "abandoned" | "no_endpoint">;
  status?: number;
}

export type PostToShop = (
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
) => Promise<PostResult>;

/** The most of a shop's answer read: enough to reuse the connection, not enough to matter. */
const MAX_ANSWER_BYTES = 4096;

/** Any 2xx acknowledges the order; every other answer is a failed attempt, retried. */
export function outcomeOfStatus(status: number): PostResult["outcome"] {
  if (status >= 200 && status < 300) return "delivered";
  if (status >= 300 && status < 400) return "http_3xx";
  if (status >= 400 && status < 500) return "http_4xx";
  return "http_5xx";
}

/**
 * Posts one order. Redirects are not followed: the body is signed for the endpoint the shop
 * configured, and a redirect is a misconfiguration the shop must fix (the 3xx is counted and
 * retried). The answer's body is ignored; at most a few KB of it are read, within the timeout.
 */
export const postToShop: PostToShop = async (url, body, headers, timeoutMs) => {
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal });
  } catch {
    // The error's message may quote the URL; the outcome is all the caller needs.
    return { outcome: signal.aborted ? "timeout" : "network" };
  }
  await drain(response).catch(() => {
    // The status is what counts; an answer cut short changes nothing.
  });
  return { outcome: outcomeOfStatus(response.status), status: response.status };
};

async function drain(response: Response): Promise<void> {
  const reader = response.body?.getReader();
  if (!reader) return;
  let read = 0;
  while (read < MAX_ANSWER_BYTES) {
    const chunk = await reader.read();
    if (chunk.done) return;
    read += chunk.value.byteLength;
  }
  await reader.cancel();
}

import type { Logger } from "@taituri/logging";

/** The time a service acts on: the real clock, or a development clock's (DEV_CLOCK_URL). */
export interface ServiceClock {
  now(): Date;
  stop(): void;
}

/**
 * A clock that follows a development clock's offset (`GET url` → `{ "offsetMs": n }`, the WhatsApp
 * simulator's), read at start and then each `pollMs`, so a jump there moves this service's
 * customer-service window, session expiry and watchdogs too. Without a URL, the real clock. A read
 * that fails keeps the last offset (logged once until it works again): a development clock that
 * went away must not stop the service.
 */
export async function startServiceClock(
  url: string | undefined,
  logger: Logger,
  pollMs = 1000,
): Promise<ServiceClock> {
  if (!url) return { now: () => new Date(), stop: () => {} };
  let offsetMs = 0;
  let failing = false;
  const read = async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(Math.max(pollMs, 500)) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = (await response.json()) as { offsetMs?: unknown };
      if (typeof body.offsetMs !== "number" || !Number.isFinite(body.offsetMs))
        throw new Error(`no offsetMs number in ${JSON.stringify(body).slice(0, 100)}`);
      // In minutes: a count of milliseconds is long enough to pass for a phone number in the logs.
      if (body.offsetMs !== offsetMs)
        logger.info("development clock: now running %d min ahead", Math.round(body.offsetMs / 60_000));
      offsetMs = body.offsetMs;
      if (failing) logger.info("development clock readable again");
      failing = false;
    } catch (error) {
      if (!failing) logger.warn({ err: error, url }, "development clock unreadable; keeping its last offset");
      failing = true;
    }
  };
  await read();
  // One read at a time: a slow clock must not pile requests up.
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    void read().finally(() => {
      reading = false;
    });
  }, pollMs);
  timer.unref();
  return { now: () => new Date(Date.now() + offsetMs), stop: () => clearInterval(timer) };
}

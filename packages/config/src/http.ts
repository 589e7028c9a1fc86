import { z } from "zod";

const ms = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/**
 * Timeouts of a service's public HTTP listener (ingress's webhook, payment's checkout and provider
 * webhook): without them a client that opens a connection and sends its request a byte at a time
 * holds a socket and a half-read body for as long as it likes.
 */
export const httpListenerSettings = {
  // The whole request, headers and body, must arrive within this (ms), or it is answered 408 and
  // its connection closed: Meta and Stripe send a webhook in one go, only a stalled or hostile
  // client takes longer.
  HTTP_REQUEST_TIMEOUT_MS: ms(10_000),
  // The request's headers must arrive within this (ms) of the connection or of the previous
  // request; at most HTTP_REQUEST_TIMEOUT_MS.
  HTTP_HEADERS_TIMEOUT_MS: ms(5_000),
  // An idle kept-alive connection is closed after this (ms). Above a load balancer's idle timeout
  // (60 s on the common ones), so the balancer, not us, closes first and never sends a request
  // down a connection we are closing.
  HTTP_KEEP_ALIVE_TIMEOUT_MS: ms(65_000),
};

export type HttpListenerConfig = {
  [K in keyof typeof httpListenerSettings]: z.infer<(typeof httpListenerSettings)[K]>;
};

/** The relation the settings must keep; for a service schema's superRefine. */
export function checkHttpListener(config: HttpListenerConfig, ctx: z.RefinementCtx): void {
  if (config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS)
    ctx.addIssue({
      code: "custom",
      path: ["HTTP_HEADERS_TIMEOUT_MS"],
      message: `must be at most HTTP_REQUEST_TIMEOUT_MS (${config.HTTP_REQUEST_TIMEOUT_MS})`,
    });
}

/** Fastify server options for a public listener with these timeouts. */
export function httpListenerOptions(config: HttpListenerConfig) {
  const deadline = Math.min(config.HTTP_HEADERS_TIMEOUT_MS, config.HTTP_REQUEST_TIMEOUT_MS);
  return {
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // A socket silent for longer than any request or idle keep-alive may take is a dead peer.
    connectionTimeout: Math.max(config.HTTP_REQUEST_TIMEOUT_MS, config.HTTP_KEEP_ALIVE_TIMEOUT_MS) + 5_000,
    http: {
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      // Node enforces both deadlines only when it sweeps its connections (every 30 s by default),
      // so a stalled request would hold on up to 30 s past its deadline; a fifth of it bounds that.
      connectionsCheckingInterval: Math.max(50, Math.floor(deadline / 5)),
    },
  };
}

/**
 * Refuses an ops port (/healthz, /readyz, /metrics) equal to the public one, for a service
 * schema's superRefine: the two listeners could not both bind it. Port 0 (any free port, in tests)
 * may be given to both.
 */
export function checkOpsPort(
  config: Record<string, unknown>,
  ctx: z.RefinementCtx,
  names: { publicPort: string; opsPort: string },
): void {
  const publicPort = config[names.publicPort];
  if (publicPort === 0 || publicPort !== config[names.opsPort]) return;
  ctx.addIssue({
    code: "custom",
    path: [names.opsPort],
    message: `must differ from ${names.publicPort} (${publicPort}): the ops endpoints have a listener of their own`,
  });
}

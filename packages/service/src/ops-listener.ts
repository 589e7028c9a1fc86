import { createOpsServer, type OpsServerOptions, type ReadinessChecks, type Registry } from "@taituri/ops";

/** A service's ops endpoints on a listener of their own. */
export interface OpsListener {
  /** Its base URL, e.g. http://127.0.0.1:3100. */
  url: string;
  /**
   * From now on /readyz answers 503 naming `stopping`, whatever the checks say, so that nothing
   * routes new work here while what is in flight drains; /healthz and /metrics still answer.
   */
  drain(): void;
  /** Drains (if not yet) and closes the listener. */
  close(): Promise<void>;
}

export interface OpsListenerOptions {
  registry: Registry;
  /** What /readyz consults, each by name (the backbone's, or those the service's traffic needs). */
  checks: ReadinessChecks;
  port: number;
  host: string;
  /** Fastify's server options: the listener timeouts a service with public traffic sets. */
  listener?: OpsServerOptions["listener"];
}

/**
 * /healthz, /readyz and /metrics on their own port: apart from public traffic, so a scraper or a
 * probe never shares a door with Meta or a shopper's browser, and the public port answers only
 * its own routes.
 */
export async function listenOps(options: OpsListenerOptions): Promise<OpsListener> {
  let draining = false;
  const ops = createOpsServer({
    registry: options.registry,
    checks: {
      stopping: async () => {
        if (draining) throw new Error("stopping");
      },
      ...options.checks,
    },
    ...(options.listener ? { listener: options.listener } : {}),
  });
  const url = await ops.listen({ port: options.port, host: options.host });
  return {
    url,
    drain() {
      draining = true;
    },
    async close() {
      draining = true;
      await ops.close();
    },
  };
}

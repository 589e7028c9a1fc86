import { createServer } from "node:net";

export const LOOPBACK = "127.0.0.1";

/** Defaults sit away from the stock ports so a developer's own Kafka/Mongo/Redis is never touched. */
export const DEFAULT_PORTS = {
  kafka: 19092,
  kafkaController: 19093,
  mongo: 27018,
  redis: 16379,
  postgres: 15432,
} as const;

/** True if we could bind the port ourselves — which also rules out a foreign server already listening. */
export function isPortFree(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => {
      srv.close(() => resolve(true));
    });
  });
}

export function ephemeralPort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === "object") resolve(addr.port);
        else reject(new Error("could not get an ephemeral port"));
      });
    });
  });
}

/**
 * The preferred port if it is free, otherwise a kernel-chosen one. `avoid` keeps two ports
 * picked for the same run (Kafka broker + controller) distinct before either is bound.
 */
export async function choosePort(preferred: number, avoid: ReadonlySet<number> = new Set()): Promise<number> {
  if (!avoid.has(preferred) && (await isPortFree(preferred))) return preferred;
  for (let i = 0; i < 20; i++) {
    const port = await ephemeralPort();
    if (!avoid.has(port)) return port;
  }
  throw new Error("could not find a free port on 127.0.0.1");
}

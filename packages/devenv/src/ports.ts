import { readFile } from "node:fs/promises";
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
 * A free port for another process to bind later, outside the range the kernel hands out by itself.
 *
 * Why not `ephemeralPort`: between our close and the other process's bind, the kernel may give that
 * very port to someone else. On a machine running test files in parallel every outgoing connection
 * (to Kafka, to the database) takes a local port from the ephemeral range, and a server then started
 * on a port a client holds cannot bind it. (The likely cause of a failure seen once in `npm test`:
 * nothing answered on the ingress port `npm start` had been given.) Below the range, only processes
 * that name a port take one, and a random pick among ~20,000 makes two of ours choosing the same
 * one unlikely; a clash still fails loudly.
 */
export async function freePort(host = LOOPBACK): Promise<number> {
  const low = 10_000;
  const high = (await kernelEphemeralLow()) - 1;
  // A kernel range reaching that far down leaves no room below it: take the kernel's choice.
  if (high - low < 1000) return ephemeralPort(host);
  const reserved = new Set<number>(Object.values(DEFAULT_PORTS));
  for (let i = 0; i < 50; i++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (!reserved.has(port) && (await isPortFree(port, host))) return port;
  }
  // Every pick busy: a crowded machine; the kernel's choice is still better than none.
  return ephemeralPort(host);
}

/** Where the kernel's range for ports it chooses itself starts (32768 by default on Linux). */
async function kernelEphemeralLow(): Promise<number> {
  try {
    const [low] = (await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8")).trim().split(/\s+/);
    if (Number(low) > 1024) return Number(low);
  } catch {
    // Not Linux: the IANA range, which BSDs and macOS use.
  }
  return 49152;
}

/**
 * The preferred port if it is free, otherwise another free one (`freePort`). `avoid` keeps two ports
 * picked for the same run (Kafka broker + controller) distinct before either is bound.
 */
export async function choosePort(preferred: number, avoid: ReadonlySet<number> = new Set()): Promise<number> {
  if (!avoid.has(preferred) && (await isPortFree(preferred))) return preferred;
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    if (!avoid.has(port)) return port;
  }
  throw new Error("could not find a free port on 127.0.0.1");
}

import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One POST the shop's endpoint received, as bytes (a signature is over the raw body). */
export interface ShopDelivery {
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** What the endpoint answered. */
  status: number;
}

/**
 * A shop's fulfilment endpoint: records every POST and answers 200, or `status` while a test makes
 * it fail. `close` and `listen` take it off the network and bring it back on the same port.
 */
export class ShopEndpoint {
  readonly received: ShopDelivery[] = [];
  /** What the endpoint answers; set it to 503 to play a shop whose system is down. */
  status = 200;
  #server: Server;
  #port = 0;

  private constructor() {
    this.#server = this.#create();
  }

  static async start(): Promise<ShopEndpoint> {
    const shop = new ShopEndpoint();
    await shop.listen();
    return shop;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/orders`;
  }

  #create(): Server {
    return createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const status = this.status;
        this.received.push({ headers: request.headers, body: Buffer.concat(chunks), status });
        response.writeHead(status, { "content-type": "application/json" }).end('{"ok":true}');
      });
    });
  }

  /** Listens on its port again (the first time: any free port). */
  async listen(): Promise<void> {
    this.#server = this.#create();
    this.#server.listen(this.#port, "127.0.0.1");
    await once(this.#server, "listening");
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  /** Off the network: connections to its port are refused until `listen`. */
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** The bodies the endpoint acknowledged with a 2xx, parsed. */
  acknowledged(): { headers: IncomingHttpHeaders; raw: Buffer; json: Record<string, unknown> }[] {
    return this.received
      .filter((d) => d.status >= 200 && d.status < 300)
      .map((d) => ({ headers: d.headers, raw: d.body, json: JSON.parse(d.body.toString("utf8")) }));
  }
}

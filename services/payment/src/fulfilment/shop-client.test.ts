import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { outcomeOfStatus, postToShop } from "./shop-client.ts";

let server: Server;
let base = "";
let redirectedTo = 0;

before(async () => {
  server = createServer((request, response) => {
    const path = request.url ?? "";
    request.resume();
    if (path === "/ok") return response.writeHead(204).end();
    if (path === "/moved") return response.writeHead(308, { location: "/elsewhere" }).end();
    if (path === "/elsewhere") {
      redirectedTo++;
      return response.writeHead(200).end();
    }
    if (path === "/slow") return void setTimeout(() => response.writeHead(200).end(), 2000).unref();
    if (path === "/big") return response.writeHead(200).end(Buffer.alloc(5_000_000, 120));
    response.writeHead(Number(path.slice(1))).end("no");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

const post = (path: string, timeoutMs = 1000) => postToShop(`${base}${path}`, "{}", {}, timeoutMs);

test("any 2xx delivers; 3xx, 4xx and 5xx are failed attempts, by class", async () => {
  assert.deepEqual(await post("/ok"), { outcome: "delivered", status: 204 });
  assert.deepEqual(await post("/400"), { outcome: "http_4xx", status: 400 });
  assert.deepEqual(await post("/503"), { outcome: "http_5xx", status: 503 });
  assert.equal(outcomeOfStatus(299), "delivered");
  assert.equal(outcomeOfStatus(301), "http_3xx");
});

test("a redirect is not followed: the signed body goes only where the shop configured", async () => {
  assert.deepEqual(await post("/moved"), { outcome: "http_3xx", status: 308 });
  assert.equal(redirectedTo, 0);
});

test("no answer within the timeout: timeout; nobody listening: network", async () => {
  assert.deepEqual(await post("/slow", 200), { outcome: "timeout" });
  const closed = createServer();
  closed.listen(0, "127.0.0.1");
  await once(closed, "listening");
  const port = (closed.address() as AddressInfo).port;
  closed.close();
  assert.deepEqual(await postToShop(`http://127.0.0.1:${port}/`, "{}", {}, 1000), { outcome: "network" });
});

test("a long answer is not read to its end", async () => {
  const started = performance.now();
  assert.deepEqual(await post("/big"), { outcome: "delivered", status: 200 });
  assert.ok(performance.now() - started < 1000);
});

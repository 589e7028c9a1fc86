import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { GraphApiClient, GraphApiError } from "./graph-api.ts";

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.closeAllConnections();
  for (const server of servers) server.close();
});

/** A local Graph API stand-in that answers as `answer` says. */
async function graphApi(answer: (res: import("node:http").ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => answer(res));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v23.0`;
}

const send = (baseUrl: string, timeoutMs: number) =>
  new GraphApiClient({ baseUrl, accessToken: "t", timeoutMs }).sendMessage("PN1", { to: "1" });

test("a send is answered with the message id Meta gives", async () => {
  const baseUrl = await graphApi((res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ messages: [{ id: "wamid.A" }] }));
  });
  assert.deepEqual(await send(baseUrl, 1000), { messageId: "wamid.A" });
});

test("a Graph API that never answers fails the send after the timeout, as unreachable", async () => {
  const baseUrl = await graphApi(() => {});
  const started = performance.now();
  await assert.rejects(send(baseUrl, 300), (error: unknown) => {
    assert.ok(error instanceof GraphApiError, String(error));
    assert.equal(error.status, 0);
    assert.match(error.message, /unreachable: no answer in 300 ms/);
    return true;
  });
  assert.ok(performance.now() - started < 3000);
});

test("an answer whose body stalls fails after the timeout too, rather than hanging", async () => {
  const baseUrl = await graphApi((res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write('{"messages":[');
  });
  const started = performance.now();
  await assert.rejects(send(baseUrl, 300), /no answer in 300 ms/);
  assert.ok(performance.now() - started < 3000);
});

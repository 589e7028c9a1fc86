import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { limiter } from "@taituri/proto";
import { createLimiterClient } from "./limiter.ts";

/**
 * Two limiter replicas behind one target, as a headless Service resolves to one address per pod:
 * the client's decisions reach both (grpc-js's default, pick_first, would send every one to the
 * first).
 */
const servers: { server: Server; port: number; calls: number }[] = [];

before(async () => {
  for (let i = 0; i < 2; i += 1) {
    const server = new Server();
    const replica = { server, port: 0, calls: 0 };
    server.addService(limiter.LimiterServiceService, {
      consume: (
        _call: ServerUnaryCall<limiter.ConsumeRequest, limiter.ConsumeResponse>,
        done: sendUnaryData<limiter.ConsumeResponse>,
      ) => {
        replica.calls += 1;
        done(null, { allowed: true, limits: [], retryAfterMs: 0, replayed: false, degraded: false });
      },
      refund: () => {},
      peek: () => {},
      resetUsage: () => {},
    } as never);
    replica.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    servers.push(replica);
  }
});
after(() => {
  for (const { server } of servers) server.forceShutdown();
});

test("decisions are spread over every address the limiter's name resolves to", async () => {
  const client = createLimiterClient({
    address: `ipv4:${servers.map((s) => `127.0.0.1:${s.port}`).join(",")}`,
    ruleSet: "default",
    timeoutMs: 5000,
    token: async () => "token",
  });
  try {
    for (let i = 0; i < 20; i += 1)
      await client.consume({ shopId: "s", shopperId: "p", cost: 1, key: `k${i}` });
  } finally {
    client.close();
  }
  // Round robin from the moment both connections are up: about half each, never all on one.
  for (const { calls } of servers) assert.ok(calls >= 5, `calls per replica: ${servers.map((s) => s.calls)}`);
});

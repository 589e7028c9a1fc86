import assert from "node:assert/strict";
import { after, test } from "node:test";
import { createRegistry } from "@taituri/ops";
import { listenOps, type OpsListener } from "./ops-listener.ts";

const listeners: OpsListener[] = [];
after(async () => {
  for (const listener of listeners) await listener.close();
});

async function listening(checks: Record<string, () => Promise<unknown>>): Promise<OpsListener> {
  const ops = await listenOps({ registry: createRegistry("svc"), checks, port: 0, host: "127.0.0.1" });
  listeners.push(ops);
  return ops;
}

const readyz = async (url: string) => {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: await response.json() };
};

test("the ops listener serves /healthz, /readyz (naming what fails) and /metrics on its port", async () => {
  let kafkaUp = false;
  const ops = await listening({
    kafka: async () => {
      if (!kafkaUp) throw new Error("connect ECONNREFUSED 10.0.0.7:9092");
    },
  });
  assert.equal((await fetch(`${ops.url}/healthz`)).status, 200);
  assert.deepEqual(await readyz(ops.url), { status: 503, body: { ready: false, failing: ["kafka"] } });
  kafkaUp = true;
  assert.deepEqual(await readyz(ops.url), { status: 200, body: { ready: true, failing: [] } });
  assert.match(
    await (await fetch(`${ops.url}/metrics`)).text(),
    /process_cpu_user_seconds_total\{service="svc"\}/,
  );
});

test("once draining, /readyz answers 503 naming `stopping` while /healthz and /metrics still answer", async () => {
  const ops = await listening({ kafka: async () => {} });
  ops.drain();
  assert.deepEqual(await readyz(ops.url), { status: 503, body: { ready: false, failing: ["stopping"] } });
  assert.equal((await fetch(`${ops.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${ops.url}/metrics`)).status, 200);
});

test("closed, the listener no longer answers", async () => {
  const ops = await listenOps({ registry: createRegistry("svc"), checks: {}, port: 0, host: "127.0.0.1" });
  await ops.close();
  await assert.rejects(fetch(`${ops.url}/healthz`));
});

import assert from "node:assert/strict";
import { createServer, type Server, connect as tcpConnect } from "node:net";
import { after, before, describe, test } from "node:test";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import { eventually, type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { readyz, type ServiceProcess, spawnService } from "./support/service-process.ts";

/**
 * Started with MongoDB away, as real processes (`node services/<name>/src/main.ts`): each stays up,
 * serves /readyz naming what it waits for (ingress, whose webhook needs only Kafka, is ready and
 * takes webhooks meanwhile), logs one line per attempt, and once MongoDB answers on the same
 * address becomes ready without a restart and replies to the shopper who wrote during the outage.
 *
 * MongoDB is "away" as a port nobody listens on; it "comes back" as a TCP relay started on that
 * port in front of the shared server, so the services see a real server appear where there was none.
 */
const SECRET = "startup-app-secret";
const run = runId();
const prefix = `it-startup-${run}.`;
const dbName = `it_startup_${run}`;

let infra: Infra;
let graph: FakeGraphApi;
let mongoPort: number;
let webhookUrl: string;
let relay: Server | undefined;
const children: Record<string, ServiceProcess> = {};

const waitingLines = (name: string) =>
  (children[name]?.lines() ?? []).filter((line) => line.msg?.startsWith("waiting for mongodb"));

/** The settings both services share: MongoDB on a port nobody listens on yet. */
const commonEnv = (name: "ingress" | "conversation") => ({
  ...infra.kafka.settings(name),
  MONGO_URL: `mongodb://127.0.0.1:${mongoPort}/`,
  MONGO_DB: dbName,
  KAFKA_TOPIC_PREFIX: prefix,
  KAFKA_PARTITIONS: "3",
});

before(async () => {
  infra = await startInfra();
  await infra.kafka.authorize(prefix);
  graph = await startFakeGraphApi();
  mongoPort = await freePort();
  const ingressPort = await freePort();
  const ingressOpsPort = await freePort();
  webhookUrl = `http://127.0.0.1:${ingressPort}/webhook`;
  children.ingress = spawnService("ingress", ingressOpsPort, {
    ...commonEnv("ingress"),
    INGRESS_PORT: String(ingressPort),
    INGRESS_OPS_PORT: String(ingressOpsPort),
    WHATSAPP_APP_SECRET: SECRET,
    WHATSAPP_VERIFY_TOKEN: "verify",
    WHATSAPP_ACCESS_TOKEN: "token",
    WHATSAPP_API_URL: graph.url,
  });
  const conversationPort = await freePort();
  children.conversation = spawnService("conversation", conversationPort, {
    ...commonEnv("conversation"),
    CONVERSATION_PORT: String(conversationPort),
  });
});

after(async () => {
  for (const service of Object.values(children)) await service.stop();
  await new Promise((resolve) => relay?.close(resolve) ?? resolve(undefined));
  await graph?.close();
  await infra?.stop();
});

/** The process's ops URL, once it listens. */
async function opsUrl(name: string): Promise<string> {
  const service = children[name];
  assert.ok(service);
  await service.listening();
  return service.url;
}

describe("start-up with MongoDB away", { timeout: 180_000 }, () => {
  const waId = `1777${run.replace(/\D/g, "").padEnd(6, "4").slice(0, 6)}`;
  const wamid = `wamid.${run}.startup`;

  test("both processes stay up; conversation is not ready naming mongodb, ingress is ready on Kafka alone", async () => {
    const ingressOps = await opsUrl("ingress");
    const conversationOps = await opsUrl("conversation");
    // Two attempts each: the processes went on past the first failure.
    await eventually(
      "two waiting lines from each",
      () => ["ingress", "conversation"].every((name) => waitingLines(name).length >= 2),
      60_000,
    );
    for (const name of ["ingress", "conversation"]) {
      const lines = waitingLines(name);
      for (const line of lines)
        assert.match(
          String(line.msg),
          new RegExp(
            `^waiting for mongodb \\(127\\.0\\.0\\.1:${mongoPort}\\): connection refused; retrying in [\\d.]+ s$`,
          ),
        );
      // One line per attempt: numbered 1, 2, 3… with none missing or repeated.
      assert.deepEqual(
        lines.map((line) => line.attempt),
        lines.map((_, i) => i + 1),
      );
      assert.equal(children[name]?.child.exitCode, null);
    }
    assert.deepEqual(await readyz(conversationOps), {
      status: 503,
      body: { ready: false, failing: ["mongodb"] },
    });
    // "ready" is logged once it is: not while it waits.
    assert.ok(!children.conversation?.lines().some((line) => line.msg === "ready"));
    await eventually(
      "ingress ready once Kafka is reached",
      async () => (await readyz(ingressOps)).status === 200,
      60_000,
    );
    assert.deepEqual((await readyz(ingressOps)).body, { ready: true, failing: [] });
  });

  test("ingress takes a shopper's webhook while MongoDB is away", async () => {
    await opsUrl("ingress");
    const body = JSON.stringify(
      textWebhook("I want a gift", { waId, phoneNumberId: "PN300", wamid, profileName: "Ana" }),
    );
    const response = await fetch(webhookUrl, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": signWebhook(body, SECRET) },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(response.status, 200);
  });

  test("MongoDB comes back on the same address: ready without a restart, and the shopper gets the reply", async () => {
    const pids = Object.fromEntries(Object.entries(children).map(([name, { child }]) => [name, child.pid]));
    const target = new URL(infra.mongo.url);
    relay = createServer((socket) => {
      const upstream = tcpConnect(Number(target.port || 27017), target.hostname);
      socket.pipe(upstream).pipe(socket);
      socket.on("error", () => upstream.destroy());
      upstream.on("error", () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay?.listen(mongoPort, "127.0.0.1", resolve));

    const conversationOps = await opsUrl("conversation");
    await eventually(
      "conversation ready",
      async () => (await readyz(conversationOps)).status === 200,
      90_000,
    );
    assert.deepEqual((await readyz(conversationOps)).body, { ready: true, failing: [] });
    await eventually("conversation's ready line", () =>
      children.conversation?.lines().some((line) => line.msg === "ready"),
    );
    await eventually(
      "the reply to the message written during the outage",
      () => graph.sends().some((request) => (request.body as { to?: string }).to === waId),
      90_000,
    );
    for (const [name, { child }] of Object.entries(children)) {
      assert.equal(child.exitCode, null, `${name} exited`);
      assert.equal(child.pid, pids[name]);
      const up = children[name]?.lines().filter((line) => line.msg?.startsWith("mongodb ("));
      assert.equal(up?.length, 1, `${name}: one line when MongoDB was reached`);
      assert.match(
        String(up?.[0]?.msg),
        new RegExp(`^mongodb \\(127\\.0\\.0\\.1:${mongoPort}\\) up after \\d+ attempts$`),
      );
      const output = children[name]?.output() ?? "";
      // No driver's stack dump, and never the shopper's number.
      assert.doesNotMatch(output, /MongoServerSelectionError|\n\s+at /);
      assert.ok(!output.includes(waId), `${name} logged the shopper's number`);
    }
  });
});

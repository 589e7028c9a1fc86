import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConversationStore } from "@taituri/conversation-service/store";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { createLogger } from "@taituri/logging";
import type { RunningService } from "@taituri/service";
import { eventually, type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { type Db, MongoClient } from "mongodb";

/**
 * The conversation service as its own process, killed (SIGKILL, no shutdown code runs) at the two
 * points where a crash could lose or double a message's effect, then started again: the message
 * must take effect exactly once and its reply be sent exactly once.
 */
const SECRET = "crash-secret";
const run = runId();
const prefix = `crash-${run}.`;
const root = resolve(new URL("../..", import.meta.url).pathname);
const logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });
let infra: Infra;
let graph: FakeGraphApi;
let ingress: RunningService;
let mongo: MongoClient;
let db: Db;
let env: NodeJS.ProcessEnv;
const children = new Set<ChildProcess>();

/** Starts `services/conversation/src/main.ts`; resolves once it is ready. */
async function startConversation(extra: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ["services/conversation/src/main.ts"], {
    cwd: root,
    env: { ...env, ...extra, CONVERSATION_PORT: String(port) },
    stdio: ["ignore", "ignore", process.env.TEST_LOG_LEVEL ? "inherit" : "ignore"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  await eventually(
    "the conversation service to be ready",
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error("conversation exited");
      return fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
    },
    60_000,
  );
  return child;
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((done) => child.once("exit", (_code, signal) => done(signal)));
}

async function stop(child: ChildProcess): Promise<void> {
  const gone = exited(child);
  child.kill("SIGTERM");
  await gone;
}

let shoppers = 0;
async function post(text: string, waId: string, wamid: string): Promise<void> {
  const body = JSON.stringify(textWebhook(text, { waId, phoneNumberId: "PNJ", wamid }));
  const response = await fetch(ingress.endpoints.webhook ?? "", {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signWebhook(body, SECRET) },
    body,
  });
  assert.equal(response.status, 200);
}

async function hello(): Promise<{ waId: string; wamid: string; conversationId: string }> {
  shoppers += 1;
  const waId = `3470${String(shoppers).padStart(6, "0")}`;
  const wamid = `wamid.crash.${run}.${shoppers}`;
  await post("I want a gift", waId, wamid);
  return { waId, wamid, conversationId: `PNJ:${waId}` };
}

const repliesTo = (waId: string) =>
  graph.sends().filter((r) => (r.body as { to?: string }).to === waId && r.status === 200);

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  // Each service logs in to Kafka as itself, allowed only its own topics and groups under the prefix.
  await infra.kafka.authorize(prefix);
  const shared = {
    MONGO_URL: infra.mongo.url,
    MONGO_DB: `crash_${run}`,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_PARTITIONS: "2",
  };
  env = {
    ...process.env,
    ...shared,
    ...infra.kafka.settings("conversation"),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
    OTEL_SDK_DISABLED: "true",
  };
  // The run's master secret is for startInfra(), not for a service.
  delete env.TAITURI_KAFKA_AUTH;
  ingress = await startIngressService(
    loadIngressConfig({
      ...shared,
      ...infra.kafka.settings("ingress"),
      INGRESS_PORT: "0",
      INGRESS_OPS_PORT: "0",
      WHATSAPP_APP_SECRET: SECRET,
      WHATSAPP_VERIFY_TOKEN: "v",
      WHATSAPP_ACCESS_TOKEN: "t",
      WHATSAPP_API_URL: graph.url,
    }),
    logger,
  );
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(`crash_${run}`);
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await ingress?.stop();
  await mongo?.close();
  await graph?.close();
  await infra?.stop();
});

describe("the conversation consumer killed mid-message and restarted", () => {
  test("killed between the claim and the commit: the message takes effect once, one reply", async () => {
    // A conversation's first message is claimed by the conversation's insert, its commit; a later
    // message claims its version first (conversation_versions), then updates the conversation.
    const crashing = await startConversation({ CONVERSATION_CRASH_AT: "after_claim" });
    const shopper = await hello();
    await eventually("the greeting", () => repliesTo(shopper.waId).length === 1, 30_000);
    const second = `${shopper.wamid}.name`;
    await post("Ana", shopper.waId, second);
    assert.equal(await exited(crashing), "SIGKILL");
    const claim = await db
      .collection("conversation_versions")
      .findOne({ _id: `${shopper.conversationId}#2` as never });
    assert.equal(claim?.eventId, second, "the version was claimed before the crash");
    const conversations = db.collection("conversation_conversations");
    const before = await conversations.findOne({ _id: shopper.conversationId as never });
    assert.equal(before?.version, 1, "nothing committed before the crash");
    assert.equal(repliesTo(shopper.waId).length, 1, "no reply to the second message yet");

    const restarted = await startConversation();
    try {
      await eventually("the reply after the restart", () => repliesTo(shopper.waId).length > 1, 60_000);
      await new Promise((done) => setTimeout(done, 1500));
      assert.equal(repliesTo(shopper.waId).length, 2, "exactly one reply to the second message");
      // The head with the version claims written since (ConversationStore.load).
      const doc = await new ConversationStore(db).load(shopper.conversationId);
      assert.deepEqual(doc?.appliedEventIds, [shopper.wamid, second]);
      assert.equal(doc?.version, 2, "applied once");
      assert.equal(doc?.conversation.state, "awaiting_theme");
    } finally {
      await stop(restarted);
    }
  });

  test("killed between the commit and publishing: the committed reply is sent once after the restart", async () => {
    const crashing = await startConversation({ CONVERSATION_CRASH_AT: "after_commit" });
    const shopper = await hello();
    assert.equal(await exited(crashing), "SIGKILL");
    const conversations = db.collection("conversation_conversations");
    const committed = await conversations.findOne({ _id: shopper.conversationId as never });
    assert.equal(committed?.version, 1, "the state change was committed before the crash");
    assert.equal(committed?.outbox.length, 1, "with the greeting waiting in its outbox");
    assert.equal(repliesTo(shopper.waId).length, 0, "and not yet published");

    const restarted = await startConversation();
    try {
      await eventually("the greeting after the restart", () => repliesTo(shopper.waId).length > 0, 60_000);
      await new Promise((done) => setTimeout(done, 1500));
      assert.equal(repliesTo(shopper.waId).length, 1, "exactly one reply");
      const doc = await conversations.findOne({ _id: shopper.conversationId as never });
      assert.equal(doc?.version, 1, "not applied a second time");
      assert.deepEqual(doc?.appliedEventIds, [shopper.wamid]);
      assert.equal(doc?.firstEventId, shopper.wamid);
    } finally {
      await stop(restarted);
    }
  });
});

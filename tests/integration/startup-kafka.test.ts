import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  freePort,
  type Infra,
  type RestartableKafka,
  startInfra,
  startRestartableKafka,
} from "@taituri/devenv";
import { eventually, runId } from "@taituri/testing/harness";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { readyz, type ServiceProcess, spawnService } from "./support/service-process.ts";

/**
 * Ingress started as a process with its Kafka broker stopped: it stays up, /readyz answers 503
 * naming kafka (no broker address on it), the webhook answers 503 so that Meta retries, the log has
 * one line per attempt and none of kafkajs's own; once the broker is started again on the same
 * address, ingress is ready without a restart and stores the webhook (200).
 *
 * The broker is this file's own (startRestartableKafka): someone else's broker is not ours to stop.
 */
const SECRET = "startup-kafka-secret";
const run = runId();

let kafka: RestartableKafka;
let infra: Infra;
let ingress: ServiceProcess;
let webhookUrl: string;

before(async () => {
  kafka = await startRestartableKafka();
  infra = await startInfra({ env: { ...process.env, KAFKA_BROKERS: kafka.brokers.join(",") } });
  await kafka.stop();
  const port = await freePort();
  const opsPort = await freePort();
  webhookUrl = `http://127.0.0.1:${port}/webhook`;
  ingress = spawnService("ingress", opsPort, {
    // A plain broker (no login): its address is all the settings there are.
    KAFKA_BROKERS: kafka.brokers.join(","),
    MONGO_URL: infra.mongo.url,
    MONGO_DB: `it_startup_kafka_${run}`,
    KAFKA_TOPIC_PREFIX: `it-startup-kafka-${run}.`,
    KAFKA_PARTITIONS: "3",
    INGRESS_PORT: String(port),
    INGRESS_OPS_PORT: String(opsPort),
    WHATSAPP_APP_SECRET: SECRET,
    WHATSAPP_VERIFY_TOKEN: "verify",
    WHATSAPP_ACCESS_TOKEN: "token",
    WHATSAPP_API_URL: "http://127.0.0.1:9",
    WEBHOOK_PUBLISH_TIMEOUT_MS: "1500",
  });
});

after(async () => {
  await ingress?.stop();
  await infra?.stop();
  await kafka?.close();
});

async function postWebhook(wamid: string): Promise<number> {
  const body = JSON.stringify(textWebhook("hello", { waId: "17770001", phoneNumberId: "PN301", wamid }));
  const response = await fetch(webhookUrl, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signWebhook(body, SECRET) },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  await response.arrayBuffer();
  return response.status;
}

const kafkaLines = () => ingress.lines().filter((line) => line.msg?.startsWith("waiting for kafka"));

describe("start-up with Kafka away", { timeout: 240_000 }, () => {
  test("ingress stays up, not ready naming kafka, one line per attempt, webhooks refused with 503", async () => {
    await ingress.listening();
    await eventually("two attempts to reach Kafka", () => kafkaLines().length >= 2, 60_000);
    const address = kafka.brokers.join(",").replaceAll(".", "\\.");
    for (const line of kafkaLines())
      assert.match(
        String(line.msg),
        new RegExp(`^waiting for kafka \\(${address}\\): connection refused; retrying in [\\d.]+ s$`),
      );
    assert.deepEqual(
      kafkaLines().map((line) => line.attempt),
      kafkaLines().map((_, i) => i + 1),
    );
    // kafkajs's own lines for each refused connection stay below info while start-up reports them.
    const kafkajs = ingress.lines().filter((line) => line.component === "kafkajs");
    assert.deepEqual(kafkajs, []);
    // Start-up's own lines: no driver's stack dump (the refused webhook below logs its own error).
    assert.doesNotMatch(ingress.output(), /\n\s+at |KafkaJS\w*Error/);
    const ready = await readyz(ingress.url);
    assert.deepEqual(ready, { status: 503, body: { ready: false, failing: ["kafka"] } });
    assert.equal(await postWebhook(`wamid.${run}.away`), 503);
    assert.equal(ingress.child.exitCode, null);
  });

  test("Kafka back on the same address: ready without a restart, and a webhook is stored", async () => {
    const pid = ingress.child.pid;
    await kafka.start();
    await eventually("ingress ready", async () => (await readyz(ingress.url)).status === 200, 120_000);
    assert.deepEqual((await readyz(ingress.url)).body, { ready: true, failing: [] });
    assert.equal(await postWebhook(`wamid.${run}.back`), 200);
    assert.equal(ingress.child.exitCode, null);
    assert.equal(ingress.child.pid, pid);
    assert.match(ingress.output(), /"msg":"kafka \([^)]+\) up after \d+ attempts"/);
  });
});

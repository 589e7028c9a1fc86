import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { createLogger } from "@taituri/logging";
import type { RunningService } from "@taituri/service";
import { eventually, runId } from "@taituri/testing/harness";

/**
 * Meta caps each business number's throughput (OUTBOUND_RATE_PER_NUMBER); the number's messages
 * are spread over every dispatcher replica. Each replica paces at the share of the outbound
 * partitions it owns, so however the group is split the replicas together stay within the cap:
 * one replica alone gets the whole rate, two share it, and the survivor of a stop gets it back.
 */
const run = runId();
const prefix = `it-pacing-${run}.`;
const RATE = 80;
const logger = createLogger({ service: "it-pacing", level: (process.env.IT_LOG as "info") ?? "silent" });
let infra: Infra;
const replicas: RunningService[] = [];

const start = async () => {
  const service = await startIngressService(
    loadIngressConfig({
      ...infra.kafka.settings("ingress"),
      MONGO_URL: infra.mongo.url,
      MONGO_DB: `it_pacing_${run}`,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_PARTITIONS: "6",
      OUTBOUND_RATE_PER_NUMBER: String(RATE),
      INGRESS_PORT: "0",
      INGRESS_OPS_PORT: "0",
      WHATSAPP_APP_SECRET: "pacing-secret",
      WHATSAPP_VERIFY_TOKEN: "v",
      WHATSAPP_ACCESS_TOKEN: "t",
      WHATSAPP_API_URL: "http://127.0.0.1:9",
    }),
    logger,
  );
  replicas.push(service);
  return service;
};

/** The replica's pacing rate per number, from its /metrics. */
const rateOf = async (service: RunningService) => {
  const text = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
  return Number(/^outbound_pacing_rate_per_number(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1]);
};

before(async () => {
  infra = await startInfra();
  await infra.kafka.authorize(prefix);
});
after(async () => {
  for (const service of replicas) await service.stop();
  await infra?.stop();
});

test("replicas share each number's rate as they share the outbound partitions, and never exceed it", async () => {
  const first = await start();
  await eventually("one replica with the whole rate", async () => (await rateOf(first)) === RATE, 30_000);
  const second = await start();
  const shares = await eventually(
    "two replicas with half each",
    async () => {
      const rates = [await rateOf(first), await rateOf(second)];
      return rates.every((r) => r === RATE / 2) && rates;
    },
    60_000,
  );
  assert.equal(
    shares.reduce((sum, rate) => sum + rate, 0),
    RATE,
  );
  await second.stop();
  replicas.pop();
  await eventually(
    "the survivor with the whole rate again",
    async () => (await rateOf(first)) === RATE,
    60_000,
  );
});

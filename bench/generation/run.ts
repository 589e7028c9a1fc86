/**
 * The generation service in one process on the real servers, with the real limiter over gRPC (OIDC
 * tokens from a local issuer): how many rounds per second it completes with the `local` renderer
 * (three 512 px PNGs a round, resvg) and with a zero-latency fake provider (what the service itself
 * costs: claim, limiter, ledger, GridFS, publish), and the paid-calls-per-accepted-round ratio when
 * every request is delivered three times (once on its own key, twice on other partitions), which
 * must be exactly 1.000. Records bench/results/generation-<date>.json and .md (or --out).
 *
 * Options: --local-rounds N (default 120), --fake-rounds N (default 600), --dup-rounds N (default
 * 200), --out DIR, --dry (no files). Unknown options (from bench/all.ts) are ignored.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startInfra } from "@taituri/devenv";
import { loadGenerationConfig } from "@taituri/generation-service/config";
import type { ImageProvider } from "@taituri/generation-service/provider";
import { startGenerationService } from "@taituri/generation-service/service";
import { createKafka, EventProducer, topicNames } from "@taituri/kafka";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { startLimiterService } from "@taituri/limiter-service/service";
import { createLogger } from "@taituri/logging";
import { startLocalIssuer } from "@taituri/oidc";
import { generation } from "@taituri/proto";

const { values: args } = parseArgs({
  strict: false,
  options: {
    "local-rounds": { type: "string", default: "120" },
    "fake-rounds": { type: "string", default: "600" },
    "dup-rounds": { type: "string", default: "200" },
    out: { type: "string", default: "bench/results" },
    dry: { type: "boolean", default: false },
  },
});
const log = (message: string) => process.stderr.write(`[bench:generation] ${message}\n`);
const logger = createLogger({ service: "bench", level: "warn" });
const run = randomUUID().slice(0, 8);
const SECRET = "bench-secret";
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
  "base64",
);
/** Answers at once with three tiny PNGs: the service's own cost per round. */
const fakeProvider: ImageProvider = {
  name: "fake",
  model: "zero-latency",
  size: "1x1",
  quality: "none",
  generate: async (_brief, count) => ({
    outcome: "ok",
    images: Array.from({ length: count }, () => ({ bytes: PNG, contentType: "image/png", extension: "png" })),
  }),
};

const infra = await startInfra();
const issuer = await startLocalIssuer({ clients: { generation: SECRET }, tokenTtlSeconds: 3600 });
const rulesDir = mkdtempSync(join(tmpdir(), "bench-generation-"));
writeFileSync(
  join(rulesDir, "limits.yaml"),
  "limits:\n  plenty: { scope: shopper, limit: 1000, period: 1d }\nruleSets:\n  generation-round: { limits: [plenty], onRedisError: deny, maxCost: 500 }\n",
);
const limiter = await startLimiterService(
  loadLimiterConfig({
    REDIS_URL: infra.redis.url,
    LIMITER_PORT: "0",
    LIMITER_GRPC_PORT: "0",
    LIMITER_RULES_FILE: join(rulesDir, "limits.yaml"),
    LIMITER_KEY_PREFIX: `bench-gen-${run}`,
    OIDC_ISSUER_URL: issuer.url,
  }),
  logger,
);
// The bench plays the conversation (it writes the requests) and reads the results: the broker's
// super user (infra.kafka.client) may do both; the service logs in as itself.
const kafka = createKafka({ ...infra.kafka.client, clientId: "bench-generation", logger });

interface Measured {
  rounds: number;
  deliveries: number;
  seconds: number;
  roundsPerSec: number;
  completed: number;
  paidCalls: number;
  acceptedRounds: number;
  paidPerAccepted: string;
}

async function measure(
  name: string,
  provider: ImageProvider | undefined,
  rounds: number,
  copies: number,
): Promise<Measured> {
  const prefix = `bench-gen-${run}-${name}.`;
  const topics = topicNames(prefix);
  // The generation service may read its requests and write its results under this prefix only.
  await infra.kafka.authorize(prefix);
  const service = await startGenerationService(
    loadGenerationConfig({
      ...infra.kafka.settings("generation"),
      MONGO_URL: infra.mongo.url,
      MONGO_DB: `bench_generation_${run}`,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_PARTITIONS: "6",
      CONSUMER_CONCURRENCY: "6",
      GENERATION_PORT: "0",
      LIMITER_URL: limiter.endpoints.grpc,
      OIDC_ISSUER_URL: issuer.url,
      OIDC_CLIENT_SECRET: SECRET,
      LOG_LEVEL: "warn",
    }),
    logger,
    provider ? { provider } : {},
  );
  const producer = new EventProducer(kafka);
  await producer.connect();
  const seen = new Map<string, number>();
  let completed = 0;
  const consumer = kafka.consumer({ groupId: `bench-${randomUUID()}`, maxWaitTimeInMs: 50 });
  await consumer.connect();
  await consumer.subscribe({ topic: topics.generationResults, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const result = generation.GenerationResult.decode(message.value ?? Buffer.alloc(0));
      seen.set(result.roundId, (seen.get(result.roundId) ?? 0) + 1);
      if (result.outcome?.$case === "completed") completed += 1;
    },
  });
  const styles = ["watercolor", "minimal", "retro"];
  const themes = ["birthday", "love", "thanks", "congrats"];
  const messages = Array.from({ length: rounds }, (_, i) => {
    const shopperId = `3463${String(i).padStart(6, "0")}`;
    // Each run has its own rounds: the database is shared, and a known round id is a duplicate.
    const conversationId = `PNB-${name}:${shopperId}`;
    const value = generation.GenerationRequest.encode({
      roundId: `${conversationId}/j1/r1`,
      conversationId,
      shopId: "demo-shop",
      phoneNumberId: "PNB",
      shopperId,
      recipient: ["Rosa", "Ana María", "Bo", "Maximiliano"][i % 4] ?? "",
      theme: themes[i % themes.length] ?? "",
      style: styles[i % styles.length] ?? "",
      productId: "mug-11oz",
      count: 3,
      requestedAt: new Date(),
    }).finish();
    // The first copy on the conversation's key; the others on keys that land elsewhere.
    return Array.from({ length: copies }, (_, c) => ({
      key: c === 0 ? conversationId : `${conversationId}#${c}`,
      value,
    }));
  }).flat();
  const started = performance.now();
  for (let i = 0; i < messages.length; i += 200)
    await producer.send(topics.generationRequests, messages.slice(i, i + 200));
  const deadline = Date.now() + 10 * 60_000;
  while (seen.size < rounds && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const seconds = (performance.now() - started) / 1000;
  // Let every duplicate be handled before reading the counters.
  const metric = async (metricName: string) => {
    const text = await (await fetch(`${service.endpoints.ops}/metrics`)).text();
    return (
      text
        .split("\n")
        .filter((line) => line.startsWith(`${metricName}{`) || line.startsWith(`${metricName} `))
        // A "busy" look is retried and counted again when it ends.
        .filter((line) => !line.includes('outcome="busy"'))
        .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0)
    );
  };
  const handled = async () => (await metric("generation_rounds_total")) >= messages.length;
  while (!(await handled()) && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 100));
  const paidCalls = await metric("generation_paid_calls_total");
  const acceptedRounds = await metric("generation_rounds_accepted_total");
  await consumer.disconnect();
  await producer.disconnect();
  await service.stop();
  const result = {
    rounds,
    deliveries: messages.length,
    seconds: round(seconds),
    roundsPerSec: round(rounds / seconds),
    completed,
    paidCalls,
    acceptedRounds,
    paidPerAccepted: acceptedRounds > 0 ? (paidCalls / acceptedRounds).toFixed(3) : "n/a",
  };
  log(`${name}: ${JSON.stringify(result)}`);
  return result;
}

const round = (n: number) => Math.round(n * 100) / 100;
try {
  const local = await measure("local", undefined, Number(args["local-rounds"]), 1);
  const fake = await measure("fake", fakeProvider, Number(args["fake-rounds"]), 1);
  const duplicates = await measure("dup", fakeProvider, Number(args["dup-rounds"]), 3);
  process.stdout.write(
    `generation: local ${local.roundsPerSec} rounds/s, zero-latency provider ${fake.roundsPerSec} rounds/s, paid calls per accepted round under 3× delivery ${duplicates.paidPerAccepted}\n`,
  );
  const ok = duplicates.paidPerAccepted === "1.000" && duplicates.completed === duplicates.rounds;
  const at = new Date().toISOString();
  const markdown = `# Generation benchmark, ${at}

The generation service in one process with the real limiter (gRPC, OIDC), Kafka, MongoDB-wire
(GridFS) and Redis on this machine; 3 designs per round; 6 partitions, 6 handled at once.

| run | rounds | deliveries | rounds/s | completed | paid calls | accepted rounds | paid / accepted |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| local renderer (512 px PNGs, resvg) | ${local.rounds} | ${local.deliveries} | ${local.roundsPerSec} | ${local.completed} | ${local.paidCalls} | ${local.acceptedRounds} | ${local.paidPerAccepted} |
| zero-latency fake provider | ${fake.rounds} | ${fake.deliveries} | ${fake.roundsPerSec} | ${fake.completed} | ${fake.paidCalls} | ${fake.acceptedRounds} | ${fake.paidPerAccepted} |
| fake provider, every request delivered 3× | ${duplicates.rounds} | ${duplicates.deliveries} | ${duplicates.roundsPerSec} | ${duplicates.completed} | ${duplicates.paidCalls} | ${duplicates.acceptedRounds} | **${duplicates.paidPerAccepted}** (must be 1.000: ${ok ? "PASS" : "FAIL"}) |

Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, Node ${process.version}. rounds/s = rounds / time from the first
request sent to the last round's result read back.
`;
  if (!args.dry) {
    const out = String(args.out);
    mkdirSync(out, { recursive: true });
    const stamp = at.replace(/:\d\d\.\d+Z$/, "Z").replace(/:/g, "");
    writeFileSync(
      join(out, `generation-${stamp}.json`),
      `${JSON.stringify({ at, local, fake, duplicates }, null, 2)}\n`,
    );
    writeFileSync(join(out, `generation-${stamp}.md`), markdown);
    log(`recorded ${join(out, `generation-${stamp}.md`)}`);
  }
  process.stdout.write(markdown);
  process.exitCode = ok ? 0 : 1;
} finally {
  await limiter.stop();
  await issuer.close();
  await infra.stop();
}

import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalProvider } from "@taituri/generation-service/local";
import { parsePromptTemplates } from "@taituri/generation-service/prompt";
import type { ImageProvider } from "@taituri/generation-service/provider";
import { EventProducer, type TopicNames } from "@taituri/kafka";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { startLimiterService } from "@taituri/limiter-service/service";
import type { Logger } from "@taituri/logging";
import { generation } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { eventually } from "@taituri/testing/harness";
import type { Consumer, Kafka } from "kafkajs";

/** Rules for the generation tests: one round per shopper and day, so a second round is refused. */
export function writeGenerationRules(dir: string): string {
  const file = join(dir, "limits.yaml");
  writeFileSync(
    file,
    `limits:
  one-a-day: { scope: shopper, limit: 1, period: 1d }
  shop-daily-cost: { scope: shop, limit: 5000, period: 1d, unit: cost }
ruleSets:
  generation-round: { limits: [one-a-day, shop-daily-cost], onRedisError: deny, maxCost: 500 }
`,
  );
  return file;
}

/**
 * The real limiter in this process, on ephemeral ports, with the generation tests' rules, its keys
 * under `keyPrefix`, trusting tokens of `issuerUrl`: what a generation service under test calls.
 */
export function startTestLimiter(options: {
  redisUrl: string;
  issuerUrl: string;
  keyPrefix: string;
  logger: Logger;
}): Promise<RunningService> {
  return startLimiterService(
    loadLimiterConfig({
      REDIS_URL: options.redisUrl,
      LIMITER_PORT: "0",
      LIMITER_GRPC_PORT: "0",
      LIMITER_RULES_FILE: writeGenerationRules(mkdtempSync(`${tmpdir()}/${options.keyPrefix}-`)),
      LIMITER_KEY_PREFIX: options.keyPrefix,
      OIDC_ISSUER_URL: options.issuerUrl,
    }),
    options.logger,
  );
}

/**
 * The local renderer with the service's own prompt templates, calling `onCall` with the round of
 * each generation: how a test counts the paid calls a round made.
 */
export function countingLocalProvider(
  options: { size: number; delayMs: number },
  onCall: (roundId: string) => void,
): ImageProvider {
  const templates = parsePromptTemplates(
    JSON.parse(
      readFileSync(new URL("../../../services/generation/data/prompts.json", import.meta.url), "utf8"),
    ),
  );
  const local = createLocalProvider({ templates, ...options });
  return {
    ...local,
    generate(brief, count) {
      onCall(brief.roundId);
      return local.generate(brief, count);
    },
  };
}

/** Publishes generation requests and collects every generation result of a topic prefix. */
export class RoundsProbe {
  readonly results: generation.GenerationResult[] = [];
  readonly #kafka: Kafka;
  readonly #topics: TopicNames;
  readonly #producer: EventProducer;
  #consumer: Consumer | undefined;

  constructor(kafka: Kafka, topics: TopicNames) {
    this.#kafka = kafka;
    this.#topics = topics;
    this.#producer = new EventProducer(kafka);
  }

  async start(): Promise<void> {
    await this.#producer.connect();
    this.#consumer = this.#kafka.consumer({ groupId: `probe-${randomUUID()}`, maxWaitTimeInMs: 100 });
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.#topics.generationResults, fromBeginning: true });
    await this.#consumer.run({
      eachMessage: async ({ message }) => {
        this.results.push(generation.GenerationResult.decode(message.value ?? Buffer.alloc(0)));
      },
    });
  }

  /** Sends the request `times` times; with `spread`, each copy under its own key (other partitions). */
  async deliver(request: generation.GenerationRequest, times = 1, spread = false): Promise<void> {
    const value = Buffer.from(generation.GenerationRequest.encode(request).finish());
    await this.#producer.send(
      this.#topics.generationRequests,
      Array.from({ length: times }, (_, i) => ({
        key: spread ? `${request.conversationId}#${i}` : request.conversationId,
        value,
      })),
    );
  }

  resultsOf(roundId: string): generation.GenerationResult[] {
    return this.results.filter((r) => r.roundId === roundId);
  }

  async stop(): Promise<void> {
    await this.#consumer?.disconnect();
    await this.#producer.disconnect();
  }
}

let rounds = 0;
/** A generation request for a new shopper (or the given one). */
export function roundRequest(run: string, over: Partial<generation.GenerationRequest> = {}) {
  rounds += 1;
  const shopperId =
    over.shopperId ?? `3461${run.replace(/\D/g, "0").slice(0, 4)}${String(rounds).padStart(4, "0")}`;
  const conversationId = `PNG:${shopperId}`;
  return generation.GenerationRequest.fromPartial({
    roundId: `${conversationId}/j1/r${rounds}`,
    conversationId,
    shopId: "demo-shop",
    phoneNumberId: "PNG",
    shopperId,
    recipient: "Rosa",
    theme: "birthday",
    style: "watercolor",
    productId: "mug-11oz",
    count: 3,
    requestedAt: new Date(),
    ...over,
  });
}

/** `node services/generation/src/main.ts`, resolved once it logs "ready" (or what `ready` matches). */
export async function spawnGeneration(
  env: NodeJS.ProcessEnv,
  ready = /"msg":"ready"/,
): Promise<ChildProcess> {
  const root = new URL("../../../", import.meta.url).pathname;
  const child = spawn(process.execPath, ["services/generation/src/main.ts"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (process.env.TEST_LOG_LEVEL) process.stderr.write(chunk);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  await eventually(
    "generation process ready",
    () => {
      if (child.exitCode !== null) throw new Error(`generation exited ${child.exitCode}: ${output}`);
      return ready.test(output);
    },
    60_000,
  );
  return child;
}

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { type FakeOpenAI, startFakeOpenAI, TINY_PNG } from "@taituri/testing/openai";
import { parsePromptTemplates } from "../domain/prompt.ts";
import { createOpenAIProvider } from "./openai.ts";

const templates = parsePromptTemplates(
  JSON.parse(readFileSync(new URL("../../data/prompts.json", import.meta.url), "utf8")),
);
const brief = {
  roundId: "PN:1/j1/r1",
  recipient: "Rosa",
  theme: "love",
  style: "minimal",
  productId: "mug-11oz",
};
let fake: FakeOpenAI;
const provider = (over: { baseURL?: string; timeoutMs?: number } = {}) =>
  createOpenAIProvider({
    apiKey: "sk-test",
    baseURL: over.baseURL ?? fake.baseURL,
    model: "gpt-image-1",
    size: "1024x1024",
    quality: "medium",
    timeoutMs: over.timeoutMs ?? 5000,
    templates,
  });

before(async () => {
  fake = await startFakeOpenAI();
});
after(() => fake.close());

test("images come back decoded; the request carries model, size, quality, n, the prompt and the key", async () => {
  fake.script("ok");
  const result = await provider().generate(brief, 3);
  assert.equal(result.outcome, "ok");
  assert.ok(result.outcome === "ok");
  assert.equal(result.images.length, 3);
  assert.deepEqual(result.images[0]?.bytes, TINY_PNG);
  assert.equal(result.images[0]?.contentType, "image/png");
  const sent = fake.requests.at(-1);
  assert.equal(sent?.authorization, "Bearer sk-test");
  assert.deepEqual(
    [sent?.body.model, sent?.body.size, sent?.body.quality, sent?.body.n],
    ["gpt-image-1", "1024x1024", "medium", 3],
  );
  assert.match(String(sent?.body.prompt), /love and affection.*"Rosa"/);
});

test("each failure is one request and one classified outcome; the SDK retries nothing", async () => {
  const cases = [
    ["rate_limited", "rate_limited"],
    ["quota", "quota"],
    ["server_error", "server_error"],
    ["content_policy", "content_policy"],
    ["bad_request", "bad_request"],
    ["garbage", "malformed"],
    ["no_images", "malformed"],
  ] as const;
  for (const [reply, outcome] of cases) {
    const before = fake.requests.length;
    fake.script(reply);
    const result = await provider().generate(brief, 2);
    assert.equal(result.outcome, outcome, reply);
    assert.equal(fake.requests.length, before + 1, `${reply}: exactly one request`);
  }
});

test("a 429 passes on the provider's retry-after", async () => {
  fake.script("rate_limited");
  const result = await provider().generate(brief, 1);
  assert.ok(result.outcome === "rate_limited");
  assert.equal(result.retryAfterMs, 20);
});

test("a provider that does not answer in time is a timeout, after one request", async () => {
  const before = fake.requests.length;
  fake.script("hang");
  const started = Date.now();
  const result = await provider({ timeoutMs: 300 }).generate(brief, 1);
  assert.equal(result.outcome, "timeout");
  assert.ok(Date.now() - started < 4000);
  assert.equal(fake.requests.length, before + 1);
});

test("connection refused is 'unreachable': the request never reached anyone", async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  const result = await provider({ baseURL: `http://127.0.0.1:${port}/v1` }).generate(brief, 1);
  assert.equal(result.outcome, "unreachable");
});

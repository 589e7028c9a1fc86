import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createLogger } from "@taituri/logging";
import { startServiceClock } from "./dev-clock.ts";

const logger = createLogger({ service: "test", level: "silent" });

test("without a development clock, the real one", async () => {
  const clock = await startServiceClock(undefined, logger);
  const before = Date.now();
  const now = clock.now().getTime();
  assert.ok(now >= before && now <= Date.now());
});

test("follows the development clock's offset, and keeps it while the clock is unreadable", async () => {
  let answer: { status: number; body: string } = {
    status: 200,
    body: JSON.stringify({ offsetMs: 3 * 3600_000 }),
  };
  let reads = 0;
  const server = createServer((_request, response) => {
    reads += 1;
    response.statusCode = answer.status;
    response.end(answer.body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sim/api/clock`;
  const clock = await startServiceClock(url, logger, 20);
  try {
    const ahead = clock.now().getTime() - Date.now();
    assert.ok(ahead > 3 * 3600_000 - 1000 && ahead <= 3 * 3600_000, String(ahead));
    answer = { status: 500, body: "{}" };
    const seen = reads;
    while (reads < seen + 2) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(clock.now().getTime() - Date.now() > 3 * 3600_000 - 1000, "the last offset is kept");
    answer = { status: 200, body: JSON.stringify({ offsetMs: 0 }) };
    while (clock.now().getTime() - Date.now() > 1000) await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    clock.stop();
    server.close();
  }
});

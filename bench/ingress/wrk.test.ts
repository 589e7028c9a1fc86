import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readdirSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { after, test } from "node:test";
import { ensureDebianTool } from "@taituri/devenv/tools";
import { prepareWrk } from "./wrk.ts";

const SECRET = "wrk-test-secret";

// A server that checks what the load generator sends as ingress would: the signature of the exact
// bytes, and JSON that is a WhatsApp text message.
const seen = { valid: 0, invalid: 0, ids: new Set<string>() };
const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks);
    const expected = `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;
    try {
      const id = JSON.parse(body.toString("utf8")).entry[0].changes[0].value.messages[0].id as string;
      if (request.headers["x-hub-signature-256"] !== expected || request.url !== "/webhook")
        throw new Error("bad");
      seen.valid += 1;
      seen.ids.add(id);
      response.writeHead(200).end('{"status":"ok"}');
    } catch {
      seen.invalid += 1;
      response.writeHead(401).end();
    }
  });
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
after(() => server.close());

test("wrk replays the signed bodies, and the result counts what the server answered", async () => {
  const wrk = await ensureDebianTool({ binary: "wrk", aptPackage: "wrk" });
  const port = (server.address() as AddressInfo).port;
  const start = await prepareWrk(
    {
      url: `http://127.0.0.1:${port}/webhook`,
      connections: 4,
      durationSec: 1,
      bodies: { secret: SECRET, runId: "wrktest", minBytes: 1024, maxBytes: 4096, templates: 8 },
    },
    wrk,
  );
  const result = await start();

  assert.equal(seen.invalid, 0, "every request carried a valid signature");
  assert.ok(result.ok > 100, `${result.ok} answers`);
  // The server may have answered a last few that wrk stopped waiting for.
  assert.ok(seen.valid >= result.ok && seen.valid <= result.ok + 4, `${seen.valid} vs ${result.ok}`);
  assert.ok(result.sent >= seen.valid, "sent is an upper bound");
  assert.equal(result.non2xx, 0);
  assert.equal(result.errors, 0);
  // Distinct ids in order, until the signed set (10,000 a second here) runs out.
  assert.equal(seen.ids.size, Math.min(seen.valid, 10_000));
  assert.ok(result.meanBodyBytes >= 1024 && result.meanBodyBytes <= 4096, `${result.meanBodyBytes} B`);
  assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p99);
  assert.ok(result.durationSec >= 0.9 && result.durationSec < 3, `${result.durationSec} s`);
  assert.ok(result.cpuCores > 0, "wrk's own CPU is measured");
  assert.deepEqual(
    readdirSync(tmpdir()).filter((f) => f.startsWith("taituri-webhooks-")),
    [],
    "the signed bodies are deleted",
  );
});

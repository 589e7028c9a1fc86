import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { test } from "node:test";

const main = new URL("./main.ts", import.meta.url).pathname;
const required = {
  SIMULATOR_WEBHOOK_URL: "http://127.0.0.1:9/webhook",
  WHATSAPP_APP_SECRET: "app-secret",
  WHATSAPP_ACCESS_TOKEN: "access-token",
};

test("main.ts serves the simulator on its configured port and stops cleanly on SIGTERM", async () => {
  const child = spawn(process.execPath, [main], {
    env: { PATH: process.env.PATH, ...required, SIMULATOR_PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(child, "exit");
  try {
    let ready: { ui: string; graphApi: string; webhook: string } | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      const entry = JSON.parse(line);
      if (entry.msg === "ready") {
        ready = entry;
        break;
      }
    }
    assert.ok(ready, "main.ts exited before it was ready");
    assert.equal(ready.graphApi, `${ready.ui}/v23.0`);
    assert.equal(ready.webhook, required.SIMULATOR_WEBHOOK_URL);
    // The chart's probe path.
    const clock = await fetch(`${ready.ui}/sim/api/clock`);
    assert.deepEqual(await clock.json(), { offsetMs: 0 });
    // The Graph API side takes the configured token, and no other.
    const refused = await fetch(`${ready.graphApi}/106540352242922/messages`, {
      method: "POST",
      headers: { authorization: "Bearer another-token", "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(refused.status, 401);
    child.kill("SIGTERM");
    const [code, signal] = await exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
  } finally {
    child.kill("SIGKILL");
  }
});

test("main.ts refuses to start on a bad environment: exit 78, each variable named", () => {
  const run = spawnSync(process.execPath, [main], {
    env: { PATH: process.env.PATH, SIMULATOR_PORT: "port", CATALOG_FILE: "/nowhere/catalog.yaml" },
    encoding: "utf8",
  });
  assert.equal(run.status, 78, run.stderr);
  const problems = run.stderr.split("\n").filter((line) => line.startsWith("  "));
  assert.deepEqual(
    problems.map((line) => line.trim().split(/[: ]/)[0]).sort(),
    ["SIMULATOR_PORT", "SIMULATOR_WEBHOOK_URL", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET"],
    run.stderr,
  );
  // With the variables right, the catalog is read, and its absence is named too.
  const catalog = spawnSync(process.execPath, [main], {
    env: { PATH: process.env.PATH, ...required, CATALOG_FILE: "/nowhere/catalog.yaml" },
    encoding: "utf8",
  });
  assert.equal(catalog.status, 78, catalog.stderr);
  assert.match(catalog.stderr, /\n {2}CATALOG_FILE: \/nowhere\/catalog\.yaml: ENOENT/);
});

import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type Infra, startInfra } from "@taituri/devenv";
import { eventually, runId } from "@taituri/testing/harness";
import { freeStartPorts, type StartPorts, startPortsEnv } from "./support/start-script.ts";

/**
 * What the README promises a newcomer: `npm start` reaches "ready" and names the WhatsApp simulator
 * first; a shopper writing through it (`npm run shopper`) gets the bot's reply; the README's signed
 * curl is taken by the webhook. Runs scripts/start.ts
 * as `npm start` does, on free ports, against the servers of this test run.
 */
const exec = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const run = runId();
let infra: Infra;
let child: ChildProcess;
let output = "";
let ports: StartPorts;

before(async () => {
  infra = await startInfra();
  ports = await freeStartPorts();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The servers, and the secured broker's credentials (TAITURI_KAFKA_AUTH): start.ts's startInfra
    // uses them, authorizes this run's prefix and gives each service its own Kafka login.
    ...infra.env(),
    MONGO_DB: `it_start_${run}`,
    KAFKA_TOPIC_PREFIX: `it-${run}.`,
  };
  // Unset, so that start.ts starts its WhatsApp simulator and Jaeger, as on a newcomer's machine.
  delete env.WHATSAPP_API_URL;
  for (const name of Object.keys(env)) if (name.startsWith("OTEL_")) delete env[name];
  Object.assign(env, startPortsEnv(ports));
  child = spawn(process.execPath, ["scripts/start.ts"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
});

after(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGKILL");
  }
  await infra?.stop();
});

describe("npm start", { timeout: 5 * 60_000 }, () => {
  test("reaches ready and says where the webhook listens", async () => {
    await eventually("Taituri is ready", () => output.includes("Taituri is ready."), 120_000);
    assert.match(
      output,
      new RegExp(`Webhook \\(Meta -> us\\):\\s+http://127\\.0\\.0\\.1:${ports.INGRESS}/webhook`),
    );
    assert.match(
      output,
      new RegExp(`^Open the WhatsApp simulator: http://127\\.0\\.0\\.1:${ports.SIMULATOR}$`, "m"),
    );
    assert.match(output, new RegExp(`Graph API \\(us -> Meta\\): http://127\\.0\\.0\\.1:${ports.SIMULATOR}`));
    assert.match(
      output,
      new RegExp(`Traces \\(Jaeger\\): API http://127\\.0\\.0\\.1:${ports.JAEGER_QUERY}/api/traces`),
    );
    // Ready was judged on the ops ports, which it names; the public ones do not serve them.
    for (const [name, port] of [
      ["payment", ports.PAYMENT_OPS],
      ["ingress", ports.INGRESS_OPS],
      ["dispatcher", ports.DISPATCHER_OPS],
    ] as const) {
      assert.match(output, new RegExp(`${name} http://127\\.0\\.0\\.1:${port}/readyz`));
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200, `${name} ready`);
    }
    for (const port of [ports.INGRESS, ports.PAYMENT])
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 404, `public port ${port}`);
  });

  test("the README's `npm run shopper` writes through the simulator and prints the bot's reply", async () => {
    const { stdout } = await exec(
      process.execPath,
      [
        "scripts/shopper.ts",
        "--url",
        `http://127.0.0.1:${ports.SIMULATOR}`,
        "--phone",
        "15550002222",
        "--wait",
        "30",
        "I want a gift",
      ],
      { cwd: root },
    );
    assert.match(stdout, /^bot: Hi Ana! 🎁 .*Who is this gift for\?/m);
    // The simulator shows the same chat in the browser.
    const state = (await (await fetch(`http://127.0.0.1:${ports.SIMULATOR}/sim/api/state`)).json()) as {
      shoppers: { waId?: string; messages: { from: string; text?: string; traceUrl?: string }[] }[];
    };
    const chat = state.shoppers.find((shopper) => shopper.waId === "15550002222");
    assert.ok(
      chat?.messages.some((message) => message.from === "bot" && message.text?.startsWith("Hi Ana!")),
    );
    // The shopper's message links to its trace: the webhook's traceparent started it, and the
    // services' spans joined it (Jaeger's query API, as npm start runs no Jaeger UI).
    const traceUrl = chat?.messages.find((message) => message.from === "shopper")?.traceUrl ?? "";
    assert.match(
      traceUrl,
      new RegExp(`^http://127\\.0\\.0\\.1:${ports.JAEGER_QUERY}/api/traces/[0-9a-f]{32}$`),
    );
    await eventually(
      "ingress and conversation spans in the message's trace",
      async () => {
        const response = await fetch(traceUrl);
        if (!response.ok) return false;
        const body = (await response.json()) as {
          data?: { processes?: Record<string, { serviceName: string }> }[];
        };
        const services = Object.values(body.data?.[0]?.processes ?? {}).map((p) => p.serviceName);
        return services.includes("ingress") && services.includes("conversation");
      },
      30_000,
    );
  });

  test("the README's signed curl is taken by the webhook", async () => {
    const { stdout: curl } = await exec(
      process.execPath,
      [
        "scripts/sign-webhook.ts",
        "--url",
        `http://127.0.0.1:${ports.INGRESS}/webhook`,
        "--from",
        "15550003333",
        "I want a gift",
      ],
      { cwd: root },
    );
    assert.match(curl, /^curl .* -H 'x-hub-signature-256: sha256=[0-9a-f]{64}' --data-binary '/);
    const { stdout: response } = await exec("sh", ["-c", curl]);
    assert.match(response, /^HTTP\/1\.1 200 OK/);
    // The services export their spans to the Jaeger npm start runs: its query API knows them.
    await eventually(
      "ingress and conversation spans in Jaeger",
      async () => {
        const response = await fetch(`http://127.0.0.1:${ports.JAEGER_QUERY}/api/services`);
        const services = ((await response.json()) as { data: string[] | null }).data ?? [];
        return services.includes("ingress") && services.includes("conversation");
      },
      30_000,
    );
  });

  test("Ctrl-C stops everything it started and exits 0", async () => {
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    assert.equal(await exited, 0);
    for (const port of [ports.INGRESS, ports.INGRESS_OPS, ports.DISPATCHER_OPS]) {
      const refused = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        () => false,
        () => true,
      );
      assert.ok(refused, `ingress still answers on ${port} after Ctrl-C`);
    }
  });
});

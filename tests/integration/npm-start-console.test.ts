import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { eventually, runId } from "@taituri/testing/harness";
import { freeStartPorts, startPortsEnv } from "./support/start-script.ts";

/**
 * What a person sees under `npm start`: readable lines, and on a clean start no warning or error,
 * so that one that does appear means something. Runs scripts/start.ts as `npm start` does, twice on
 * one fresh topic prefix: the first start creates the topics and consumer groups, the second finds
 * them. Each runs to "ready" and is stopped with Ctrl-C; what both printed is checked.
 */
const root = new URL("../../", import.meta.url).pathname;
const run = runId();
const SERVICES = ["limiter", "conversation", "generation", "payment", "dispatcher", "ingress"];
let infra: Infra;
let env: NodeJS.ProcessEnv;

before(async () => {
  infra = await startInfra();
  env = {
    ...process.env,
    ...infra.env(),
    MONGO_DB: `it_console_${run}`,
    KAFKA_TOPIC_PREFIX: `it-console-${run}.`,
  };
  // As on a newcomer's machine: start.ts starts its WhatsApp simulator and Jaeger, and its own
  // LOG_FORMAT and LOG_LEVEL are in force.
  delete env.WHATSAPP_API_URL;
  delete env.LOG_FORMAT;
  delete env.LOG_LEVEL;
  for (const name of Object.keys(env)) if (name.startsWith("OTEL_")) delete env[name];
  Object.assign(env, startPortsEnv(await freeStartPorts()));
});

after(async () => {
  await infra?.stop();
});

/** Runs scripts/start.ts to "ready", stops it with Ctrl-C, and returns its exit code and every line it printed. */
async function startAndStop(): Promise<{ code: number | null; lines: string[] }> {
  const child = spawn(process.execPath, ["scripts/start.ts"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    await eventually(
      "Taituri is ready",
      () => output.includes("Taituri is ready.") || child.exitCode !== null,
      180_000,
    );
  } finally {
    child.kill("SIGINT");
  }
  const code = await exited;
  return { code, lines: output.split("\n") };
}

// A service's line as start.ts prints it: `[service] ` and the service's own line.
const SERVICE_LINE = new RegExp(`^\\[(${SERVICES.join("|")})\\] (.*)$`);
// pino-pretty's single line: time, level, message.
const PRETTY = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /;

/** Lines at warn or above, in either format, and Node's own warnings. */
function warningsAndErrors(lines: string[]): string[] {
  return lines.filter(
    (line) =>
      /\] \[[\d:.]+\] (WARN|ERROR|FATAL): /.test(line) ||
      /"level":\s*"(warn|error|fatal)"/.test(line) ||
      /\(node:\d+\) \w*Warning/.test(line),
  );
}

function checkConsole({ code, lines }: { code: number | null; lines: string[] }) {
  assert.equal(code, 0, lines.join("\n"));
  assert.ok(lines.some((line) => line === "Taituri is ready."));
  assert.deepEqual(warningsAndErrors(lines), []);
  const own = lines.flatMap((line) => {
    const match = SERVICE_LINE.exec(line);
    return match ? [{ service: match[1], text: match[2] ?? "" }] : [];
  });
  // Pretty, one line per entry; an error's stack continues on indented lines.
  assert.deepEqual(
    own.filter(({ text }) => !PRETTY.test(text) && !/^\s/.test(text)),
    [],
  );
  for (const service of SERVICES)
    assert.ok(
      own.some((line) => line.service === service && /INFO: ready /.test(line.text)),
      `no pretty "ready" line from ${service}`,
    );
}

describe("npm start's console", { timeout: 8 * 60_000 }, () => {
  test("a first start, which creates the topics, prints readable lines and no warning or error", async () => {
    checkConsole(await startAndStop());
  });

  test("a restart on the topics and groups it created does too", async () => {
    checkConsole(await startAndStop());
  });
});

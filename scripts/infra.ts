// Local infrastructure CLI. See docs/infrastructure.md.
//   node scripts/infra.ts up [--persist] [--mode auto|docker|local]
//   node scripts/infra.ts provision
//   node scripts/infra.ts mongo-features [--ttl-wait SECONDS]
import { parseArgs } from "node:util";
import { probeMongoFeatures, provisionInfra, startInfra } from "@taituri/devenv";

const USAGE = `usage:
  node scripts/infra.ts up [--persist] [--mode auto|docker|local]
      start Kafka (secured: OAUTHBEARER and ACLs), a MongoDB-wire server and Redis in
      the foreground; prints KAFKA_BROKERS=… MONGO_URL=… REDIS_URL=… TAITURI_KAFKA_AUTH=…
      and stops them on Ctrl-C / SIGTERM
  node scripts/infra.ts provision
      download/build everything local mode needs, then exit (idempotent)
  node scripts/infra.ts mongo-features [--ttl-wait SECONDS]
      start infra (or use MONGO_URL) and print which MongoDB features work on it`;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    persist: { type: "boolean", default: false },
    mode: { type: "string" },
    "ttl-wait": { type: "string", default: "75" },
    help: { type: "boolean", short: "h", default: false },
  },
});
const command = positionals[0];
function parseMode(value: string | undefined): "auto" | "docker" | "local" | undefined {
  if (value === undefined || value === "auto" || value === "docker" || value === "local") return value;
  console.error(`--mode must be auto, docker or local\n${USAGE}`);
  process.exit(2);
}
const mode = parseMode(values.mode);

async function up(): Promise<void> {
  const infra = await startInfra({ persist: values.persist, ...(mode ? { mode } : {}) });
  // stdout carries only the variables, so `eval "$(…)"`-style consumers can read them.
  // TAITURI_KAFKA_AUTH (single-quoted: it is JSON) lets a test run or a script log in to the secured
  // broker: it holds the run's secret, from which every client's credential is derived.
  const quote = (value: string) =>
    /^[\w.:/,@-]*$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
  process.stdout.write(
    Object.entries(infra.env())
      .map(([name, value]) => `${name}=${quote(value)}\n`)
      .join(""),
  );
  process.stderr.write(`[infra] up (${infra.mode}); Ctrl-C to stop\n`);
  // Nothing else keeps the event loop alive: the server processes are unref'd by design.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(sig, () => resolve());
  });
  process.stderr.write("[infra] stopping…\n");
  try {
    await infra.stop();
  } finally {
    clearInterval(keepAlive);
  }
}

async function features(): Promise<void> {
  const infra = await startInfra({ ...(mode ? { mode } : {}) });
  try {
    const results = await probeMongoFeatures(infra.mongo.url, {
      ttlWaitMs: Number(values["ttl-wait"]) * 1000,
    });
    for (const r of results) {
      process.stdout.write(`${r.ok ? "OK  " : "FAIL"} ${r.feature}${r.detail ? ` — ${r.detail}` : ""}\n`);
    }
  } finally {
    await infra.stop();
  }
}

try {
  if (values.help || command === "help") {
    console.log(USAGE);
  } else if (command === "up") {
    await up();
  } else if (command === "provision") {
    await provisionInfra();
  } else if (command === "mongo-features") {
    await features();
  } else {
    console.error(USAGE);
    process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
}

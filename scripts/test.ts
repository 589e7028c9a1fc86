/**
 * `npm test`: static checks, then every unit and integration test in one `node --test` run against
 * real servers (started here unless KAFKA_BROKERS / MONGO_URL / REDIS_URL name them), then stops
 * what it started. A run that executed no test, or skipped one, fails.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { startInfra } from "@taituri/devenv";
import { bin, generate, root, run, step } from "./lib.ts";

await step("generating protobuf code", generate);
await step("lint and format check (biome)", () => run(bin("biome"), ["ci", "."]));
await step("typecheck (tsc, every workspace)", () =>
  run(bin("turbo"), ["run", "typecheck", "--output-logs=errors-only"]),
);

// Quiet once the tests have run, so that the test runner's summary stays the last thing printed.
let quiet = false;
const infra = await step("starting Kafka, MongoDB-wire and Redis", () =>
  startInfra({ log: (line) => quiet || process.stderr.write(`[infra] ${line}\n`) }),
);
// The test files' own startInfra() finds these servers, and the credentials of the secured broker,
// through the environment.
const env = { ...process.env, ...infra.env() };
mkdirSync(`${root}.test-results`, { recursive: true });
const tap = `${root}.test-results/results.tap`;
let exitCode = 0;
try {
  await run(
    process.execPath,
    [
      "--test",
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      "--test-reporter=tap",
      `--test-reporter-destination=${tap}`,
      "packages/*/src/**/*.test.ts",
      "services/*/src/**/*.test.ts",
      "tests/integration/**/*.test.ts",
      "bench/**/*.test.ts",
    ],
    env,
  );
} catch {
  exitCode = 1;
} finally {
  quiet = true;
  await infra.stop();
}

// node --test exits 0 when it found nothing to run; and a skip means a server or a check was
// missing. Neither is a pass.
const summary = readFileSync(tap, "utf8");
const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, "m").exec(summary)?.[1] ?? "0");
if (count("tests") === 0) {
  process.stderr.write("[taituri] no test ran: that is a failure\n");
  exitCode = 1;
}
if (count("skipped") > 0 || count("todo") > 0) {
  process.stderr.write(
    `[taituri] ${count("skipped")} skipped and ${count("todo")} todo tests: that is a failure\n`,
  );
  exitCode = 1;
}
process.exit(exitCode);

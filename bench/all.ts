/**
 * `npm run bench`: every benchmark, one after the other so none shares the machine with another:
 * the ingress webhook (bench/ingress/run.ts), the lone webhook against a bare kafkajs send
 * (bench/ingress/lone.ts), the conversation service (bench/conversation/run.ts),
 * the limiter next to envoyproxy/ratelimit (bench/limiter/run.ts) and the generation service
 * (bench/generation/run.ts). Each records its results under bench/results/. Arguments are passed
 * to each (e.g. --dry).
 */
import { spawn } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const benches = [
  "bench/ingress/run.ts",
  "bench/ingress/lone.ts",
  "bench/conversation/run.ts",
  "bench/limiter/run.ts",
  "bench/generation/run.ts",
];
let failed = 0;
for (const bench of benches) {
  process.stderr.write(`\n[bench] ${bench}\n`);
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [bench, ...process.argv.slice(2)], { cwd: root, stdio: "inherit" });
    child.on("exit", (exitCode) => resolve(exitCode));
  });
  if (code !== 0) {
    process.stderr.write(`[bench] ${bench} broke (exit ${code})\n`);
    failed += 1;
  }
}
process.exit(failed > 0 ? 1 : 0);

/**
 * The machine's speed on the server's core, as a fixed piece of work costs in CPU: HMAC-SHA256 of
 * 2.5 KB (what ingress does to every webhook), in µs of this process's CPU per operation, the
 * median of 7 batches. Run on the server's core just before and after a measured run
 * (servers.ts speedProbe): on this VM the same code has cost up to 1.5× more CPU in one run than
 * in the next, bare Fastify and ingress alike, and a run's figures mean little without it.
 * Prints the figure on stdout.
 */
import { createHmac } from "node:crypto";

const data = Buffer.alloc(2500, 7);
const key = Buffer.alloc(32, 1);
const batch = 2000;
const perOp: number[] = [];
// The first batches warm the JIT and the CPU's caches; they are not counted.
for (let round = 0; round < 10; round++) {
  const before = process.cpuUsage();
  for (let i = 0; i < batch; i++) createHmac("sha256", key).update(data).digest();
  const used = process.cpuUsage(before);
  if (round >= 3) perOp.push((used.user + used.system) / batch);
}
perOp.sort((a, b) => a - b);
process.stdout.write(`${(perOp[Math.floor(perOp.length / 2)] ?? 0).toFixed(2)}\n`);

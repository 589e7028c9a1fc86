import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

/**
 * The chaos suite's short run (bench/chaos/README.md) as part of `npm test`: a dozen shoppers from
 * hello to paid while every fault is injected, on servers of its own. It passes only when every
 * invariant held; a failure names each violated invariant with its examples (ids as pseudonyms),
 * and the run's report and service logs are kept for the post-mortem.
 */
const root = new URL("../../", import.meta.url).pathname;

interface Report {
  checks: { name: string; count: number; violations: number; examples: string[] }[];
  shoppers: number;
  journeysPaid: number;
  logDir: string;
}

test("chaos --short: every invariant holds under every fault", { timeout: 15 * 60_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "taituri-chaos-it-"));
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["bench/chaos/run.ts", "--short", "--out", out], {
      cwd: root,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-20_000);
    });
    child.on("exit", (exitCode) => resolve({ code: exitCode, stderr }));
  });
  const file = readdirSync(out).find((name) => name.endsWith(".json"));
  assert.ok(file, `the run wrote no report (exit ${code}):\n${stderr}`);
  const report = JSON.parse(readFileSync(join(out, file), "utf8")) as Report;
  const failed = report.checks.filter((c) => c.violations > 0);
  assert.deepEqual(
    failed.map(
      (c) => `${c.name}: ${c.violations} of ${c.count}\n    ${c.examples.slice(0, 5).join("\n    ")}`,
    ),
    [],
    `report ${join(out, file.replace(/\.json$/, ".md"))}, service logs ${report.logDir}`,
  );
  assert.ok(report.checks.every((c) => c.count > 0 || c.name === "every dead letter accounted for"));
  assert.equal(report.journeysPaid, report.shoppers);
  assert.equal(code, 0);
});

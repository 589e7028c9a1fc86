import assert from "node:assert/strict";
import { closeSync, openSync, writeSync } from "node:fs";
import { test } from "node:test";
import {
  coresSince,
  cpuByProcess,
  cpuSince,
  cpuSnapshot,
  machineCpuMs,
  systemPart,
  threadCpuMs,
  threadCpuSince,
} from "./cpu.ts";

test("processes are named by the part of the system they run", () => {
  assert.equal(
    systemPart(1, "/x/node_modules/node/bin/node services/conversation/src/main.ts"),
    "conversation",
  );
  assert.equal(systemPart(1, "/usr/bin/java -Xmx1g -cp lib/* kafka.Kafka /tmp/server.properties"), "kafka");
  assert.equal(systemPart(1, "/root/.cache/taituri/ferretdb-1.24.2/bin/ferretdb --handler=pg"), "ferretdb");
  assert.equal(systemPart(1, "postgres: taituri postgres 127.0.0.1(52008) idle"), "postgres");
  assert.equal(systemPart(1, "/usr/lib/postgresql/15/bin/postgres -D /tmp/pg -p 15432"), "postgres");
  assert.equal(systemPart(1, "/usr/bin/redis-server 127.0.0.1:16379"), "redis");
  assert.equal(systemPart(process.pid, "anything"), "load generator + Graph API stand-in");
  assert.equal(systemPart(1, "/usr/sbin/sshd -D"), undefined);
});

test("CPU read from /proc grows with work done, for this process and the machine", () => {
  const before = cpuSnapshot();
  const mine = cpuByProcess((pid) => (pid === process.pid ? "me" : undefined)).get("me") ?? 0;
  const until = performance.now() + 300;
  let spin = 0;
  while (performance.now() < until) spin += Math.sqrt(spin + 1);
  const after = cpuByProcess((pid) => (pid === process.pid ? "me" : undefined)).get("me") ?? 0;
  // 300 ms of spinning is at least 100 ms of CPU in the 10 ms ticks /proc counts, however busy the machine.
  assert.ok(after - mine >= 100, `this process used ${after - mine} ms`);
  const machine = machineCpuMs();
  assert.ok(machine.busy > 0 && machine.busy <= machine.total);
  const since = cpuSince(before, 10);
  assert.ok((since.msPerMessageByPart["load generator + Graph API stand-in"] ?? 0) >= 10);
  assert.ok(since.busyShare > 0 && since.busyShare <= 1);
});

test("the kernel's part of a process's CPU: system calls count there, and never more than the whole", () => {
  const me = (pid: number) => (pid === process.pid ? "me" : undefined);
  const before = cpuSnapshot(me);
  const zeros = Buffer.alloc(1 << 16);
  const until = performance.now() + 400;
  const fd = openSync("/dev/null", "w");
  while (performance.now() < until) writeSync(fd, zeros);
  closeSync(fd);
  const since = cpuSince(before, 1);
  const kernel = since.kernelMsPerMessageByPart.me ?? 0;
  const total = since.msPerMessageByPart.me ?? 0;
  // 400 ms of writes in 10 ms ticks: some of it is counted in the kernel, and it is part of the total.
  assert.ok(kernel >= 10, `kernel ${kernel} ms of ${total}`);
  assert.ok(kernel <= total, `kernel ${kernel} ms of ${total}`);
});

test("cores used since a reading: a part spinning through the window, at most one core", () => {
  const before = cpuSnapshot((pid) => (pid === process.pid ? "me" : undefined));
  const until = performance.now() + 500;
  let spin = 0;
  while (performance.now() < until) spin += Math.sqrt(spin + 1);
  const { machine, byPart } = coresSince(before);
  // 10 ms ticks over 500 ms on a shared machine: a good part of one core, never much more.
  assert.ok((byPart.me ?? 0) >= 0.3 && (byPart.me ?? 0) <= 1.1, `this process used ${byPart.me} cores`);
  assert.ok(machine >= (byPart.me ?? 0) - 0.1, `machine ${machine} cores`);
});

test("a process's CPU by thread puts this process's spinning on its JavaScript thread", () => {
  const before = threadCpuMs(process.pid);
  assert.ok(Object.keys(before).length > 1, `threads: ${Object.keys(before).join(", ")}`);
  const until = performance.now() + 300;
  let spin = 0;
  while (performance.now() < until) spin += Math.sqrt(spin + 1);
  const used = threadCpuSince(before, threadCpuMs(process.pid));
  // Node 24 names its JavaScript thread; 300 ms of spinning is at least 100 ms in /proc's ticks.
  assert.ok((used.MainThread ?? 0) >= 100, `by thread: ${JSON.stringify(used)}`);
  assert.ok("MainThread (kernel)" in threadCpuMs(process.pid), "kernel time has its own entry");
  assert.deepEqual(threadCpuMs(2 ** 22 + 1), {}, "a pid that is not there has no threads");
});

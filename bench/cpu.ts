import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";

/**
 * CPU time by process, read from /proc (Linux): what a benchmark step cost the machine, per part.
 * A latency figure on a shared 2-core machine says little alone; CPU per message says which part
 * to make cheaper and how far the machine is from its ceiling.
 */

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

/** Busy and total CPU time of the whole machine, in ms, from /proc/stat. */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number) as number[];
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  const total = busy + (idle ?? 0) + (iowait ?? 0);
  return { busy: (busy * 1000) / TICKS_PER_SECOND, total: (total * 1000) / TICKS_PER_SECOND };
}

/**
 * The machine's stolen and total CPU time so far, in ms (/proc/stat): time the hypervisor gave this
 * VM's cores to someone else. A run whose steal share is high measured a slower machine.
 */
export function machineStealMs(): { steal: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = fields.slice(0, 8).reduce((sum, ticks) => sum + (ticks || 0), 0);
  return { steal: ((fields[7] ?? 0) * 1000) / TICKS_PER_SECOND, total: (total * 1000) / TICKS_PER_SECOND };
}

/** Names the part of the system a process belongs to, by pid and command line (undefined: none). */
type PartOf = (pid: number, cmdline: string) => string | undefined;

/**
 * CPU ms used so far by each live process, grouped by `nameOf(pid, command line)` (undefined: not
 * counted). A process that exits between two readings drops out of the difference.
 */
export function cpuByProcess(nameOf: PartOf, kernel?: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      const name = nameOf(Number(entry), cmdline);
      if (!name) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command name (which may hold spaces and parentheses): utime is the 14th
      // field of the line, stime the 15th, i.e. the 12th and 13th after the closing parenthesis.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]);
      out.set(name, (out.get(name) ?? 0) + (ticks * 1000) / TICKS_PER_SECOND);
      kernel?.set(name, (kernel.get(name) ?? 0) + (Number(fields[12]) * 1000) / TICKS_PER_SECOND);
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/** The parts of the system a benchmark runs, by command line. */
export function systemPart(pid: number, cmdline: string): string | undefined {
  if (pid === process.pid) return "load generator + Graph API stand-in";
  const service = /services\/(\w+)\/src\/main\.ts/.exec(cmdline);
  if (service) return service[1];
  if (cmdline.includes("kafka.Kafka")) return "kafka";
  if (/\bferretdb\b/.test(cmdline)) return "ferretdb";
  if (/^postgres\b|postgresql\/\d+\/bin\/postgres/.test(cmdline)) return "postgres";
  if (/redis-server/.test(cmdline)) return "redis";
  return undefined;
}

/** A reading to diff against later: machine totals and each part's CPU. */
export function cpuSnapshot(partOf: PartOf = systemPart) {
  const kernel = new Map<string, number>();
  return { machine: machineCpuMs(), parts: cpuByProcess(partOf, kernel), kernel, partOf };
}

/** CPU ms per message since `before`, in total and by part, and the machine's busy share. */
export function cpuSince(
  before: ReturnType<typeof cpuSnapshot>,
  messages: number,
  after = cpuSnapshot(before.partOf),
) {
  const busy = after.machine.busy - before.machine.busy;
  const total = after.machine.total - before.machine.total;
  const perMessage: Record<string, number> = {};
  const kernelPerMessage: Record<string, number> = {};
  for (const [name, ms] of after.parts) {
    const used = ms - (before.parts.get(name) ?? 0);
    if (used <= 0) continue;
    const inKernel = (after.kernel.get(name) ?? 0) - (before.kernel.get(name) ?? 0);
    perMessage[name] = Number((used / Math.max(1, messages)).toFixed(2));
    kernelPerMessage[name] = Number((inKernel / Math.max(1, messages)).toFixed(2));
  }
  return {
    busyShare: Number((busy / Math.max(1, total)).toFixed(2)),
    machineMsPerMessage: Number((busy / Math.max(1, messages)).toFixed(2)),
    msPerMessageByPart: perMessage,
    /** The part of msPerMessageByPart spent in the kernel (system calls: the socket writes among them). */
    kernelMsPerMessageByPart: kernelPerMessage,
  };
}

/**
 * Cores each part kept busy since `before` (1: one core all the time), and the whole machine's: a
 * load run's CPU split, which reads the same whatever its length.
 */
export function coresSince(before: ReturnType<typeof cpuSnapshot>, after = cpuSnapshot(before.partOf)) {
  // The machine's total is every core's time, so this is the wall time between the two readings.
  const wallMs = Math.max(1, (after.machine.total - before.machine.total) / cpus().length);
  const cores = (ms: number) => Number((ms / wallMs).toFixed(2));
  const byPart: Record<string, number> = {};
  for (const [name, ms] of after.parts) byPart[name] = cores(ms - (before.parts.get(name) ?? 0));
  return { machine: cores(after.machine.busy - before.machine.busy), byPart };
}

/**
 * CPU ms used so far by each thread of `pid`, in user space under the thread's name and in the
 * kernel under "<name> (kernel)", grouped by the thread's name (/proc/<pid>/task/<tid>/comm:
 * on Node 24 `MainThread` is the JavaScript thread, `V8Worker` V8's compiler and GC helpers,
 * `libuv-worker` the thread pool). A process's CPU can grow while its JavaScript thread's stays put; this says which
 * thread took it. Empty when the process is gone or off Linux.
 */
export function threadCpuMs(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const task of tasks) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${task}/comm`, "utf8").trim();
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // User time under the thread's name, kernel time (system calls: sockets, epoll) beside it.
      const kernel = `${name} (kernel)`;
      out[name] = (out[name] ?? 0) + (Number(fields[11]) * 1000) / TICKS_PER_SECOND;
      out[kernel] = (out[kernel] ?? 0) + (Number(fields[12]) * 1000) / TICKS_PER_SECOND;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** Each thread name's CPU ms between two readings of threadCpuMs (names only in `after` count from 0). */
export function threadCpuSince(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ms] of Object.entries(after)) {
    const used = ms - (before[name] ?? 0);
    if (used > 0) out[name] = used;
  }
  return out;
}

// Fast tests of the provisioning machinery; they start no real servers.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { acquireLock, ensureInstalled, pruneStale, withLock } from "./cache.ts";
import { startInfra } from "./infra.ts";
import { newClusterId } from "./kafka.ts";
import { choosePort, ephemeralPort, freePort, isPortFree } from "./ports.ts";
import { ServerExitedError, spawnServer, waitUntilReady } from "./process.ts";
import { sleep } from "./util.ts";

const scratch = await mkdtemp(join(tmpdir(), "taituri-infra-unit-"));
after(() => rm(scratch, { recursive: true, force: true }));
const quiet = () => {};

/** A pid that certainly belongs to no running process. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  return Number(r.stdout.trim());
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ port, host: "127.0.0.1" }, () => resolve(srv));
  });
}

describe("ports", () => {
  test("choosePort keeps a free preferred port and avoids a busy one", async () => {
    const port = await ephemeralPort();
    assert.equal(await choosePort(port), port);
    const srv = await listen(port);
    try {
      assert.equal(await isPortFree(port), false);
      const other = await choosePort(port);
      assert.notEqual(other, port);
      assert.equal(await isPortFree(other), true);
    } finally {
      srv.close();
    }
  });

  test("freePort picks a bindable port below the kernel's own range, so no outgoing connection takes it", async () => {
    const [low] = (await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8"))
      .trim()
      .split(/\s+/)
      .map(Number);
    const picked = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const port = await freePort();
      assert.ok(port >= 10_000 && port < (low ?? 32768), `port ${port} not below ${low}`);
      assert.equal(await isPortFree(port), true);
      picked.add(port);
    }
    assert.ok(picked.size > 10, "picks are spread, so two test files rarely choose the same port");
    const srv = await listen(await freePort());
    srv.close();
  });

  test("choosePort honours the avoid set", async () => {
    const port = await ephemeralPort();
    assert.notEqual(await choosePort(port, new Set([port])), port);
  });
});

describe("locks and idempotent installs", () => {
  test("withLock serialises concurrent holders", async () => {
    const lock = join(scratch, "serial.lock");
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 4 }, () =>
        withLock(lock, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await sleep(50);
          inside--;
        }),
      ),
    );
    assert.equal(maxInside, 1);
    assert.equal(existsSync(lock), false, "lock dir removed after release");
  });

  test("a lock left by a dead process is taken over", async () => {
    const lock = join(scratch, "stale.lock");
    await mkdir(lock);
    await writeFile(join(lock, "owner.json"), JSON.stringify({ pid: deadPid(), since: "then" }));
    const release = await acquireLock(lock, { timeoutMs: 2_000 });
    const owner = JSON.parse(await readFile(join(lock, "owner.json"), "utf8")) as { pid: number };
    assert.equal(owner.pid, process.pid);
    await release();
  });

  test("timeoutMs 0 fails at once when a live process holds the lock", async () => {
    const lock = join(scratch, "held.lock");
    const release = await acquireLock(lock);
    try {
      await assert.rejects(acquireLock(lock, { timeoutMs: 0, what: "persistent data" }), /held by pid/);
    } finally {
      await release();
    }
  });

  test("ensureInstalled builds once, even with concurrent callers, and reuses the result", async () => {
    const dir = join(scratch, "thing-1.0");
    let builds = 0;
    const install = () =>
      ensureInstalled({
        dir,
        version: "1.0",
        log: quiet,
        what: "thing",
        build: async (tmp) => {
          builds++;
          await sleep(50);
          await writeFile(join(tmp, "payload"), "ok");
        },
      });
    const results = await Promise.all([install(), install(), install()]);
    assert.equal(builds, 1);
    assert.equal(results.filter((r) => r.built).length, 1);
    assert.equal(await readFile(join(dir, "payload"), "utf8"), "ok");
    assert.equal((await install()).built, false);
  });

  test("a failed build leaves nothing behind and is retried next time", async () => {
    const dir = join(scratch, "flaky-1.0");
    const opts = { dir, version: "1.0", log: quiet, what: "flaky" };
    await assert.rejects(
      ensureInstalled({
        ...opts,
        build: async () => {
          throw new Error("network down");
        },
      }),
      /network down/,
    );
    assert.equal(existsSync(dir), false);
    const r = await ensureInstalled({ ...opts, build: async (tmp) => writeFile(join(tmp, "x"), "y") });
    assert.equal(r.built, true);
  });

  test("pruneStale removes run folders of dead processes only", async () => {
    const cache = join(scratch, "cache-prune");
    const dead = join(cache, "runs", "dead");
    const alive = join(cache, "runs", "alive");
    await mkdir(dead, { recursive: true });
    await mkdir(alive, { recursive: true });
    await writeFile(join(dead, "owner.pid"), String(deadPid()));
    await writeFile(join(alive, "owner.pid"), String(process.pid));
    await pruneStale(cache, quiet);
    assert.equal(existsSync(dead), false);
    assert.equal(existsSync(alive), true);
  });
});

describe("server processes", () => {
  test("stop() sends SIGTERM and resolves once the process is gone", async () => {
    const logFile = join(scratch, "sleep.log");
    const server = spawnServer({ name: "sleeper", command: "sleep", args: ["60"], logFile, log: quiet });
    await server.stop(5_000);
    assert.equal(server.hasExited(), true);
    await server.stop(); // idempotent
  });

  test("stop() escalates to SIGKILL when SIGTERM is ignored", async () => {
    const logFile = join(scratch, "stubborn.log");
    const server = spawnServer({
      name: "stubborn",
      command: "sh",
      args: ["-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"],
      logFile,
      log: quiet,
    });
    await sleep(200); // let the trap be installed
    const t0 = performance.now();
    await server.stop(300);
    assert.equal(server.hasExited(), true);
    assert.ok(performance.now() - t0 < 5_000);
    assert.equal((await server.exited).signal, "SIGKILL");
  });

  test("waitUntilReady fails fast with the log tail when the server dies", async () => {
    const logFile = join(scratch, "dies.log");
    const server = spawnServer({
      name: "dies",
      command: "sh",
      args: ["-c", "echo 'bind: Address already in use' ; exit 3"],
      logFile,
      log: quiet,
    });
    await assert.rejects(
      waitUntilReady({ server, timeoutMs: 10_000, probe: async () => Promise.reject(new Error("not yet")) }),
      (err: unknown) =>
        err instanceof ServerExitedError &&
        /code 3/.test(err.message) &&
        /Address already in use/.test(err.logTail),
    );
  });

  test("waitUntilReady times out with the last probe error", async () => {
    const server = spawnServer({
      name: "silent",
      command: "sleep",
      args: ["60"],
      logFile: join(scratch, "silent.log"),
      log: quiet,
    });
    try {
      await assert.rejects(
        waitUntilReady({
          server,
          timeoutMs: 300,
          probe: async () => Promise.reject(new Error("ECONNREFUSED")),
        }),
        /did not become ready.*ECONNREFUSED/s,
      );
    } finally {
      await server.stop();
    }
  });
});

describe("startInfra in env mode", () => {
  test("uses the given endpoints and starts nothing", async () => {
    const lines: string[] = [];
    const infra = await startInfra({
      log: (l) => lines.push(l),
      env: {
        KAFKA_BROKERS: "k1:9092, k2:9092",
        MONGO_URL: "mongodb://m:27017/",
        REDIS_URL: "redis://r:6379",
      },
    });
    assert.equal(infra.mode, "env");
    assert.deepEqual(infra.kafka.brokers, ["k1:9092", "k2:9092"]);
    assert.equal(infra.mongo.url, "mongodb://m:27017/");
    assert.equal(infra.redis.url, "redis://r:6379");
    assert.equal(lines.length, 3);
    await infra.stop();
    await infra.stop();
  });

  test("rejects an unknown TAITURI_INFRA_MODE", async () => {
    await assert.rejects(
      startInfra({ log: quiet, env: { KAFKA_BROKERS: "k:1", TAITURI_INFRA_MODE: "kubernetes" } }),
      /TAITURI_INFRA_MODE/,
    );
  });
});

test("a Kafka cluster id never starts with '-', which StorageTool would read as an option", () => {
  // 0xf8… encodes to "-…" in base64url; the generator must draw again.
  const draws = [Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0x01)];
  const id = newClusterId(() => draws.shift() ?? Buffer.alloc(16, 0x02));
  assert.equal(id, Buffer.alloc(16, 0x01).toString("base64url"));
  assert.equal(Buffer.alloc(16, 0xf8).toString("base64url")[0], "-");
  assert.match(newClusterId(), /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Logger } from "@taituri/logging";
import { failureReason, mongoAddress, StartStep } from "./start-step.ts";

interface Line {
  level: string;
  fields: Record<string, unknown>;
  msg: string;
}

/** The few logger methods StartStep calls, kept as lines. */
function recordingLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    lines.push({ level, fields, msg });
  };
  return { logger: { warn: at("warn"), info: at("info"), debug: at("debug") } as unknown as Logger, lines };
}

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:27018"), { code: "ECONNREFUSED" });
const fast = { initialMs: 10, maxMs: 40 };

describe("StartStep", () => {
  test("fails, logs one line per attempt with the wait, then is up and ready without anything restarted", async () => {
    const { logger, lines } = recordingLogger();
    let attempts = 0;
    let pings = 0;
    const step = new StartStep({
      name: "mongodb",
      address: "127.0.0.1:27018",
      attempt: async () => {
        attempts += 1;
        if (attempts < 3) throw refused();
      },
      ping: async () => {
        pings += 1;
      },
      logger,
      retry: fast,
    });
    assert.equal(step.state, "waiting");
    await assert.rejects(step.check(), /mongodb waiting/);
    step.start();
    await step.up;
    assert.equal(step.state, "up");
    assert.equal(attempts, 3);
    const warnings = lines.filter((line) => line.level === "warn");
    assert.equal(warnings.length, 2);
    for (const line of warnings)
      assert.match(
        line.msg,
        /^waiting for mongodb \(127\.0\.0\.1:27018\): connection refused; retrying in \d+\.\d s$/,
      );
    assert.deepEqual(
      lines.filter((line) => line.level === "info").map((line) => line.msg),
      ["mongodb (127.0.0.1:27018) up after 3 attempts"],
    );
    await step.check();
    assert.equal(pings, 1);
    await step.settled();
  });

  test("the waits double from the initial one up to the cap, jittered within their upper half", async () => {
    const waits = async (random: () => number) => {
      const { logger, lines } = recordingLogger();
      let attempts = 0;
      const step = new StartStep({
        name: "kafka",
        address: "b:9092",
        attempt: async () => {
          attempts += 1;
          if (attempts < 6) throw refused();
        },
        logger,
        retry: fast,
        random,
      }).start();
      await step.up;
      return lines.filter((line) => line.level === "warn").map((line) => line.fields.retryInMs);
    };
    assert.deepEqual(await waits(() => 1), [10, 20, 40, 40, 40]);
    assert.deepEqual(await waits(() => 0), [5, 10, 20, 20, 20]);
  });

  test("a first attempt that succeeds logs nothing above debug", async () => {
    const { logger, lines } = recordingLogger();
    const step = new StartStep({ name: "kafka", address: "b:9092", attempt: async () => {}, logger }).start();
    await step.up;
    assert.deepEqual(
      lines.map((line) => line.level),
      ["debug"],
    );
  });

  test("work waits for its dependencies without counting that as failures, then starts", async () => {
    const { logger, lines } = recordingLogger();
    let dependencyUp = false;
    const dependency = new StartStep({
      name: "mongodb",
      address: "m:27017",
      attempt: async () => {
        if (!dependencyUp) throw refused();
      },
      logger,
      retry: fast,
    }).start();
    let started = 0;
    const work = new StartStep({
      name: "dispatcher",
      after: [dependency],
      attempt: async () => {
        assert.equal(dependency.state, "up");
        started += 1;
      },
      logger,
      retry: fast,
    }).start();
    while (lines.filter((line) => line.level === "warn").length < 2)
      await new Promise((r) => setImmediate(r));
    assert.equal(work.state, "waiting");
    assert.equal(started, 0);
    dependencyUp = true;
    await work.up;
    assert.equal(started, 1);
    assert.ok(lines.every((line) => line.fields.step !== "dispatcher" || line.level !== "warn"));
  });

  test("a failing start of the service's own names the step, not an address", async () => {
    const { logger, lines } = recordingLogger();
    let attempts = 0;
    const step = new StartStep({
      name: "dispatcher consumer",
      attempt: async () => {
        attempts += 1;
        if (attempts === 1)
          throw Object.assign(new Error("boom"), { name: "KafkaJSConnectionError", code: "ETIMEDOUT" });
      },
      logger,
      retry: fast,
    }).start();
    await step.up;
    assert.match(lines[0]?.msg ?? "", /^starting dispatcher consumer failed: timed out; retrying in /);
  });

  test("stop ends the attempts: the step is stopped, never ready, and settles", async () => {
    const { logger, lines } = recordingLogger();
    const step = new StartStep({
      name: "redis",
      address: "r:6379",
      attempt: async () => {
        throw refused();
      },
      logger,
      retry: { initialMs: 60_000, maxMs: 60_000 },
    }).start();
    while (lines.length === 0) await new Promise((r) => setImmediate(r));
    step.stop();
    await step.settled();
    assert.equal(step.state, "stopped");
    await assert.rejects(step.check(), /redis stopped/);
    assert.equal(lines.length, 1);
  });

  test("work whose dependency never came is stopped without an attempt", async () => {
    const { logger } = recordingLogger();
    const dependency = new StartStep({ name: "kafka", address: "b:9092", attempt: async () => {}, logger });
    let attempts = 0;
    const work = new StartStep({
      name: "consumer",
      after: [dependency],
      attempt: async () => {
        attempts += 1;
      },
      logger,
    }).start();
    work.stop();
    await work.settled();
    assert.equal(attempts, 0);
    assert.equal(work.state, "stopped");
  });
});

describe("failureReason", () => {
  test("finds the system error inside a driver's wrapping", () => {
    // MongoServerSelectionError keeps each server's last error in reason.servers.
    const selection = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:27018"), {
      name: "MongoServerSelectionError",
      reason: {
        servers: new Map([
          [
            "127.0.0.1:27018",
            { error: Object.assign(new Error("x"), { name: "MongoNetworkError", cause: refused() }) },
          ],
        ]),
      },
    });
    assert.equal(failureReason(selection), "connection refused");
    const kafkajs = Object.assign(new Error("retries exceeded"), {
      name: "KafkaJSNumberOfRetriesExceeded",
      originalError: Object.assign(new Error("Connection error"), {
        name: "KafkaJSConnectionError",
        code: "ENOTFOUND",
      }),
    });
    assert.equal(failureReason(kafkajs), "host not found");
    assert.equal(failureReason(new AggregateError([refused()])), "connection refused");
  });

  test("says what the name says, or the name, and never the message", () => {
    assert.equal(
      failureReason(Object.assign(new Error("bad"), { name: "KafkaJSSASLAuthenticationError" })),
      "authentication failed",
    );
    assert.equal(
      failureReason(
        Object.assign(new Error("Server selection timed out"), { name: "MongoServerSelectionError" }),
      ),
      "timed out",
    );
    const quoting = Object.assign(
      new Error('E11000 duplicate key error dup key: { phone: "+15551234567" }'),
      {
        name: "MongoServerError",
      },
    );
    assert.equal(failureReason(quoting), "MongoServerError");
    assert.equal(failureReason("a string"), "string");
  });
});

describe("mongoAddress", () => {
  test("keeps hosts and ports, drops credentials, database and options", () => {
    assert.equal(mongoAddress("mongodb://127.0.0.1:27018/"), "127.0.0.1:27018");
    assert.equal(mongoAddress("mongodb://user:s3cr%40t@a:1,b:2/taituri?tls=true"), "a:1,b:2");
    assert.equal(
      mongoAddress("mongodb+srv://u:p@cluster0.example.net/?retryWrites=true"),
      "cluster0.example.net",
    );
    assert.equal(mongoAddress("mongodb://db"), "db");
  });
});

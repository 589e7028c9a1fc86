import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import {
  type BuiltImage,
  buildImage,
  ensureBuildah,
  type InspectedImage,
  inspectImage,
} from "@taituri/devenv/image";
import { createKafka, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { eventually, type FakeGraphApi, startFakeGraphApi } from "@taituri/testing/harness";

/**
 * The container image (Dockerfile), built with buildah as `npm run image` builds it, and each of
 * the five services started from it with its own command (`node services/<name>/src/main.ts`,
 * through `buildah run --isolation=chroot`: the image's filesystem, user and environment, the
 * host's network) against the test's servers: /readyz answers 200, and SIGTERM ends it with 0.
 */
const execFileAsync = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const run = `r${randomUUID().slice(0, 7)}`;
const prefix = `image-${run}.`;
const GENERATION_SECRET = "image-generation-secret";
const SERVICES = ["limiter", "conversation", "generation", "payment", "ingress"] as const;
type ServiceName = (typeof SERVICES)[number];

/** A service running inside the image: the `buildah run` process and the Node process under it. */
interface Contained {
  container: string;
  buildah: ChildProcess;
  /** Where its /readyz answers: the ops port for ingress and payment, its HTTP port otherwise. */
  readyUrl: string;
  output: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const log = (line: string) => process.stderr.write(`[image] ${line}\n`);
let buildah: string;
let image: BuiltImage;
let config: NonNullable<InspectedImage["OCIv1"]>["config"];
let mounted: { container: string; dir: string } | undefined;
let infra: Infra;
let issuer: LocalIssuer;
let graph: FakeGraphApi;
const running: Partial<Record<ServiceName, Contained>> = {};

before(async () => {
  const t0 = performance.now();
  buildah = await ensureBuildah({ log });
  image = await buildImage({ root, log });
  log(
    `${image.tag}: ${image.cachedSteps}/${image.steps} steps cached, ${image.size}, ` +
      `${(image.buildMs / 1000).toFixed(1)}s to build, ${((performance.now() - t0) / 1000).toFixed(1)}s with the base`,
  );
  config = (await inspectImage(buildah, image.tag))?.OCIv1?.config;
  const container = buildahOut(["from", "--name", `taituri-image-test-${run}-files`, image.tag]);
  mounted = { container, dir: buildahOut(["mount", container]) };

  infra = await startInfra();
  issuer = await startLocalIssuer({ clients: { generation: GENERATION_SECRET } });
  graph = await startFakeGraphApi();
  await infra.kafka.authorize(prefix);
  const ports: Record<string, number> = {};
  for (const name of [...SERVICES, "limiter_grpc", "payment_ops", "ingress_ops"])
    ports[name] = await freePort();
  // Only what a pod would be given: nothing of this process's environment reaches the services.
  const common = {
    DEPLOYMENT_ENVIRONMENT: "local",
    MONGO_URL: infra.mongo.url,
    MONGO_DB: `it_image_${run}`,
    REDIS_URL: infra.redis.url,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_PARTITIONS: "1",
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
    OTEL_TRACES_EXPORTER: "none",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
  };
  const own: Record<ServiceName, Record<string, string>> = {
    limiter: {
      LIMITER_PORT: String(ports.limiter),
      LIMITER_GRPC_PORT: String(ports.limiter_grpc),
      LIMITER_KEY_PREFIX: `image-${run}`,
      OIDC_ISSUER_URL: issuer.url,
    },
    conversation: { CONVERSATION_PORT: String(ports.conversation) },
    generation: {
      GENERATION_PORT: String(ports.generation),
      LIMITER_URL: `127.0.0.1:${ports.limiter_grpc}`,
      OIDC_ISSUER_URL: issuer.url,
      OIDC_CLIENT_SECRET: GENERATION_SECRET,
    },
    payment: {
      PAYMENT_PORT: String(ports.payment),
      PAYMENT_OPS_PORT: String(ports.payment_ops),
      PAYMENT_PUBLIC_URL: `http://127.0.0.1:${ports.payment}`,
    },
    ingress: {
      INGRESS_PORT: String(ports.ingress),
      INGRESS_OPS_PORT: String(ports.ingress_ops),
      WHATSAPP_APP_SECRET: "image-app-secret",
      WHATSAPP_VERIFY_TOKEN: "image-verify-token",
      WHATSAPP_ACCESS_TOKEN: "image-access-token",
      WHATSAPP_API_URL: graph.url,
    },
  };
  // All five at once: generation's readiness includes the limiter it calls.
  for (const name of SERVICES) {
    const env = { ...common, ...(name === "limiter" ? {} : infra.kafka.settings(name)), ...own[name] };
    running[name] = startInContainer(name, env, `http://127.0.0.1:${ports[`${name}_ops`] ?? ports[name]}`);
  }
});

after(async () => {
  for (const service of Object.values(running)) {
    if (service.buildah.exitCode === null && service.buildah.signalCode === null) {
      signalService(service, "SIGKILL");
      await Promise.race([service.exit, sleep(10_000)]);
    }
  }
  const containers = [...Object.values(running).map((s) => s.container), mounted?.container];
  for (const container of containers) if (container) buildahOut(["rm", container]);
  await graph?.close();
  await issuer?.close();
  await infra?.stop();
});

function buildahOut(args: string[]): string {
  return execFileSync(buildah, args, { encoding: "utf8" }).trim();
}

/** A deadline to race against: unref'd, so one that lost does not hold the test process open. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** `buildah run` of the service's command in a working container of its own. */
function startInContainer(name: ServiceName, env: Record<string, string>, readyUrl: string): Contained {
  const container = buildahOut(["from", "--name", `taituri-image-test-${run}-${name}`, image.tag]);
  const envArgs = Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]);
  const child = spawn(
    buildah,
    ["run", "--isolation=chroot", ...envArgs, container, "--", "node", `services/${name}/src/main.ts`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const service: Contained = {
    container,
    buildah: child,
    readyUrl,
    output: "",
    exit: new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))),
  };
  for (const stream of [child.stdout, child.stderr])
    stream.on("data", (chunk: Buffer) => {
      service.output = (service.output + chunk.toString()).slice(-50_000);
      if (process.env.TEST_LOG_LEVEL) process.stderr.write(`[${name}] ${chunk}`);
    });
  return service;
}

/**
 * The service's Node process: the one below `buildah run` (buildah-chroot-runtime, then
 * buildah-chroot-exec) whose command is node. `buildah run` does not pass signals on, so SIGTERM
 * goes to Node directly, as a container runtime delivers it to the container's PID 1.
 */
function nodeProcess(service: Contained): number {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  const isBelow = (pid: number): boolean => {
    for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p))
      if (p === service.buildah.pid) return true;
    return false;
  };
  for (const pid of parents.keys()) {
    if (!isBelow(pid)) continue;
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
    if (argv0 === "node" || argv0.endsWith("/node")) return pid;
  }
  throw new Error(`no node process under buildah run (pid ${service.buildah.pid}):\n${service.output}`);
}

function signalService(service: Contained, signal: NodeJS.Signals): void {
  try {
    process.kill(nodeProcess(service), signal);
  } catch {
    service.buildah.kill("SIGKILL");
  }
}

/** The Uid line of /proc/<pid>/status: real, effective, saved, filesystem. */
function uids(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^Uid:\s+(.*)$/m)?.[1] ?? "";
  return line.split(/\s+/).map(Number);
}

describe("the image's configuration", () => {
  test("runs as a non-root numeric user, with no entrypoint and no shell in its command", () => {
    const user = /^(\d+)(?::(\d+))?$/.exec(config?.User ?? "");
    assert.ok(user, `USER must be numeric uid[:gid], is ${JSON.stringify(config?.User)}`);
    assert.notEqual(Number(user[1]), 0);
    assert.notEqual(Number(user[2] ?? user[1]), 0);
    assert.deepEqual(config?.Entrypoint ?? [], []);
    assert.deepEqual(config?.Cmd ?? [], []);
    assert.equal(config?.WorkingDir, "/app");
  });

  test("carries the OCI labels, with this checkout's commit", () => {
    const labels = config?.Labels ?? {};
    for (const key of ["title", "description", "source", "version", "revision", "created", "licenses"])
      assert.ok(labels[`org.opencontainers.image.${key}`], `org.opencontainers.image.${key} missing`);
    assert.equal(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert.ok(!Number.isNaN(Date.parse(labels["org.opencontainers.image.created"] ?? "")));
    const revision = labels["org.opencontainers.image.revision"] ?? "";
    assert.equal(revision, image.revision);
    assert.equal(labels["org.opencontainers.image.version"], image.version);
    // And the services name it in every span (service.version).
    assert.ok((config?.Env ?? []).includes(`TAITURI_VERSION=${image.version}`), JSON.stringify(config?.Env));
    // A commit of this repository (others may have committed since the build).
    assert.match(revision, /^[0-9a-f]{40}$/);
    execFileSync("git", ["-C", root, "cat-file", "-e", `${revision}^{commit}`]);
  });
});

describe("the image's files", () => {
  const app = (path: string) => join(mounted?.dir ?? "/nonexistent", "app", path);

  test("hold what the services read: sources, generated protobuf code, data files, fonts", () => {
    for (const path of [
      "services/ingress/src/main.ts",
      "packages/proto/src/gen",
      "services/conversation/data/catalog.yaml",
      "services/conversation/data/messages.json",
      "services/generation/data/prompts.json",
      "services/limiter/rules/limits.yaml",
      // What the chart runs from the image besides the services: the topics Job, the simulator.
      "scripts/kafka-topics.ts",
      "packages/simulator/src/main.ts",
      "node_modules/@expo-google-fonts/noto-sans",
      "node_modules/@taituri/proto",
    ])
      assert.ok(existsSync(app(path)), `${path} missing from the image`);
    assert.ok(readdirSync(app("packages/proto/src/gen")).length > 0, "no generated protobuf code");
  });

  test("hold no development dependency, test helper, unit test or .git", () => {
    for (const name of [
      "typescript",
      "@biomejs/biome",
      "playwright-core",
      "turbo",
      "@bufbuild/buf",
      "ts-proto",
      "fast-check",
      "testcontainers",
      "dependency-cruiser",
      "node",
      "@taituri/testing",
      "@taituri/devenv",
    ])
      assert.ok(!existsSync(app(`node_modules/${name}`)), `node_modules/${name} is in the image`);
    assert.ok(!existsSync(app("packages/testing")));
    assert.ok(!existsSync(app("tests")));
    const ours = ["packages", "services"].flatMap((dir) =>
      (readdirSync(app(dir), { recursive: true }) as string[]).map((path) => `${dir}/${path}`),
    );
    assert.deepEqual(
      ours.filter((path) => path.endsWith(".test.ts") && !path.includes("node_modules/")),
      [],
    );
    const everything = readdirSync(app("."), { recursive: true }) as string[];
    assert.deepEqual(
      everything.filter((path) => path === ".git" || path.endsWith("/.git")),
      [],
    );
  });
});

describe("each service starts from the image and stops on SIGTERM", () => {
  // In start order's reverse: the limiter, which generation calls, is stopped last.
  for (const name of ["ingress", "payment", "generation", "conversation", "limiter"] as const) {
    test(name, async () => {
      const service = running[name];
      assert.ok(service, `${name} was not started`);
      await Promise.race([
        eventually(
          `${name} /readyz 200 inside the image`,
          async () => (await fetch(`${service.readyUrl}/readyz`).catch(() => undefined))?.status === 200,
          120_000,
        ),
        service.exit.then((exit) => {
          throw new Error(`exited (${exit.signal ?? exit.code}) before it was ready`);
        }),
      ]).catch((error: Error) => {
        throw new Error(`${name}: ${error.message}\n--- its output ---\n${service.output}`);
      });
      const node = nodeProcess(service);
      const uid = Number(config?.User?.split(":")[0]);
      assert.deepEqual(
        uids(node),
        [uid, uid, uid, uid],
        `${name} runs as ${uids(node)}, not the image's user`,
      );
      process.kill(node, "SIGTERM");
      const exit = await Promise.race([service.exit, sleep(45_000).then(() => undefined)]);
      assert.ok(exit, `${name} still running 45 s after SIGTERM:\n${service.output}`);
      assert.deepEqual(exit, { code: 0, signal: null }, service.output);
      const errors = service.output
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .filter((line) => /"level":"(error|fatal)"/.test(line));
      assert.deepEqual(errors, [], `${name} logged errors`);
    });
  }
});

// After the services have stopped: run while five services create their own topics, the command
// can meet UNKNOWN_TOPIC_OR_PARTITION from the broker and exit 3 (the chart's Job is retried).
test("the chart's topics Job command creates the deployment's topics from the image", async () => {
  const jobPrefix = `image-${run}-job.`;
  await infra.kafka.authorize(jobPrefix);
  // As the chart's Job runs it: logged in as the conversation, which may create the topics.
  const env = {
    DEPLOYMENT_ENVIRONMENT: "local",
    LOG_FORMAT: "json",
    ...infra.kafka.settings("conversation"),
  };
  const container = mounted?.container ?? assert.fail("no working container");
  const envArgs = Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]);
  await execFileAsync(buildah, [
    "run",
    "--isolation=chroot",
    ...envArgs,
    container,
    "--",
    "node",
    "scripts/kafka-topics.ts",
    "--prefix",
    jobPrefix,
    "--partitions",
    "1",
  ]);
  const kafka = createKafka({
    ...infra.kafka.client,
    clientId: "image-test",
    logger: createLogger({ service: "it", level: "silent" }),
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    for (const topic of Object.values(topicNames(jobPrefix)))
      assert.ok(topics.includes(topic), `${topic} was not created`);
  } finally {
    await admin.disconnect();
  }
});

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { runId } from "@taituri/testing/harness";
import kafkajs, { Kafka, logLevel } from "kafkajs";

/**
 * `npm run kafka-acls` on the shared secured broker: `apply` as the super user puts the bindings in
 * place for a new deployment prefix (seen through the broker's own DescribeAcls), a second apply
 * changes nothing, and a service's own principal cannot grant itself anything.
 */
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
const run = runId();
const prefix = `acls-${run}.`;
let infra: Infra;

const cli = (args: string[], env: Record<string, string>) => {
  const { TAITURI_KAFKA_AUTH: _, ...inherited } = process.env;
  return spawnSync(process.execPath, ["scripts/kafka-acls.ts", ...args], {
    cwd: new URL("../..", import.meta.url),
    env: { ...inherited, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
};

async function writersOfRequests(): Promise<string[]> {
  const admin = new Kafka({
    clientId: `it-acls-${run}`,
    ...infra.kafka.client,
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const { resources } = await admin.describeAcls({
      resourceType: AclResourceTypes.TOPIC,
      resourceName: `${prefix}generation.requests.v1`,
      resourcePatternType: ResourcePatternTypes.LITERAL,
      operation: AclOperationTypes.WRITE,
      permissionType: AclPermissionTypes.ALLOW,
    });
    return resources.flatMap((r) => r.acls.map((a) => a.principal)).sort();
  } finally {
    await admin.disconnect();
  }
}

before(async () => {
  infra = await startInfra();
  assert.ok(infra.kafka.secured, "the shared broker is secured (npm test starts it so)");
});
after(async () => {
  await infra?.stop();
});

describe("npm run kafka-acls", { timeout: 120_000 }, () => {
  test("print names the chart's service accounts, and only the conversation writes the requests", () => {
    const printed = cli(
      ["print", "--prefix", prefix, "--kubernetes", "shop/taituri", "--format", "json"],
      {},
    );
    assert.equal(printed.status, 0, printed.stderr);
    const entries = JSON.parse(printed.stdout) as {
      principal: string;
      operation: string;
      resourceName: string;
    }[];
    const writers = entries
      .filter((e) => e.operation === "WRITE" && e.resourceName === `${prefix}generation.requests.v1`)
      .map((e) => e.principal);
    assert.deepEqual(writers, ["User:system:serviceaccount:shop:taituri-conversation"]);
  });

  test("a service's own principal cannot grant anything (exit 3)", async () => {
    const result = cli(["apply", "--prefix", prefix, "--principal", "generation=User:generation"], {
      ...infra.kafka.settings("generation"),
    });
    assert.equal(result.status, 3, result.stdout + result.stderr);
    assert.deepEqual(await writersOfRequests(), []);
  });

  test("apply as the super user puts them in place; again, nothing changes", async () => {
    const sasl = infra.kafka.client.sasl as { mechanism: string; username: string; password: string };
    const admin = {
      KAFKA_BROKERS: infra.kafka.brokers.join(","),
      KAFKA_SASL_MECHANISM: sasl.mechanism,
      KAFKA_SASL_USERNAME: sasl.username,
      KAFKA_SASL_PASSWORD: sasl.password,
    };
    for (let i = 0; i < 2; i++) {
      const result = cli(["apply", "--prefix", prefix], admin);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`ACL bindings for prefix "acls-${run}\\." on .*: in place`));
      assert.deepEqual(await writersOfRequests(), ["User:conversation"]);
    }
  });
});

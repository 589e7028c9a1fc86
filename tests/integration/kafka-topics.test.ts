import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { runId } from "@taituri/testing/harness";
import { Kafka, logLevel } from "kafkajs";

/**
 * `npm run kafka-topics` (the Helm chart's pre-install Job) on the shared secured broker: as a
 * principal allowed to create topics it creates every topic and dead-letter twin of a new prefix
 * with the services' partitions and retention; run again, it changes nothing; bad usage exits 2.
 */
const run = runId();
const prefix = `topics-${run}.`;
let infra: Infra;

const cli = (args: string[], env: Record<string, string>) => {
  const { TAITURI_KAFKA_AUTH: _, ...inherited } = process.env;
  return spawnSync(process.execPath, ["scripts/kafka-topics.ts", ...args], {
    cwd: new URL("../..", import.meta.url),
    env: { ...inherited, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
};

before(async () => {
  infra = await startInfra();
});
after(async () => {
  await infra?.stop();
});

describe("npm run kafka-topics", { timeout: 120_000 }, () => {
  test("creates every topic of a prefix once, with the services' partitions and retention", async () => {
    const sasl = infra.kafka.client.sasl as
      | { mechanism: string; username: string; password: string }
      | undefined;
    const admin = {
      KAFKA_BROKERS: infra.kafka.brokers.join(","),
      ...(sasl
        ? {
            KAFKA_SASL_MECHANISM: sasl.mechanism,
            KAFKA_SASL_USERNAME: sasl.username,
            KAFKA_SASL_PASSWORD: sasl.password,
          }
        : {}),
    };
    const first = cli(["--prefix", prefix, "--partitions", "3"], admin);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`topics for prefix "topics-${run}\\." on .*: created `));
    const again = cli(["--prefix", prefix, "--partitions", "3"], admin);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /all there already/);

    const client = new Kafka({
      clientId: `it-topics-${run}`,
      ...infra.kafka.client,
      logLevel: logLevel.NOTHING,
    });
    const kafkaAdmin = client.admin();
    await kafkaAdmin.connect();
    try {
      const ours = (await kafkaAdmin.listTopics()).filter((t) => t.startsWith(prefix)).sort();
      assert.ok(
        ours.includes(`${prefix}inbound.v1`) && ours.includes(`${prefix}inbound.v1.dlq`),
        ours.join(),
      );
      const { topics } = await kafkaAdmin.fetchTopicMetadata({
        topics: [`${prefix}outbound.v1`, `${prefix}outbound.v1.dlq`],
      });
      assert.deepEqual(topics.map((t) => [t.name, t.partitions.length]).sort(), [
        [`${prefix}outbound.v1`, 3],
        [`${prefix}outbound.v1.dlq`, 1],
      ]);
    } finally {
      await kafkaAdmin.disconnect();
    }
  });

  test("bad usage exits 2 with the usage", () => {
    const result = cli(["--partitions", "0"], {});
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--partitions: a whole number/);
  });
});

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import kafkajs from "kafkajs";
import {
  aclCommand,
  KAFKA_SERVICES,
  kafkaAcls,
  kubernetesPrincipals,
  loadAccessPolicy,
  localPrincipals,
  writersOf,
} from "./access.ts";
import { deadLetterTopic, topicNames } from "./topics.ts";

const { AclOperationTypes, AclResourceTypes } = kafkajs;
const prefix = "shop1.";
const names = topicNames(prefix);
const entries = kafkaAcls(loadAccessPolicy(), { prefix, principals: localPrincipals() });

describe("Kafka access policy", () => {
  test("only the conversation writes the paid requests", () => {
    assert.deepEqual(writersOf(entries, names.generationRequests), ["User:conversation"]);
    assert.deepEqual(writersOf(entries, names.paymentRequests), ["User:conversation"]);
  });

  test("each topic has the writers the design says", () => {
    assert.deepEqual(writersOf(entries, names.inbound), ["User:ingress"]);
    assert.deepEqual(writersOf(entries, names.outbound), ["User:conversation"]);
    assert.deepEqual(writersOf(entries, names.generationResults), ["User:generation"]);
    assert.deepEqual(writersOf(entries, names.paymentEvents), ["User:payment"]);
    assert.deepEqual(writersOf(entries, names.orders), ["User:payment"]);
  });

  test("a reader of a topic writes its dead letters, nobody else does", () => {
    assert.deepEqual(writersOf(entries, deadLetterTopic(names.generationRequests)), ["User:generation"]);
    assert.deepEqual(writersOf(entries, deadLetterTopic(names.inbound)), [
      "User:conversation",
      "User:ingress",
    ]);
    assert.deepEqual(writersOf(entries, deadLetterTopic(names.outbound)), ["User:ingress"]);
  });

  test("groups carry the prefix and are read only by their service", () => {
    const groups = entries.filter((e) => e.resourceType === AclResourceTypes.GROUP);
    assert.deepEqual(groups.map((g) => `${g.principal} ${g.resourceName}`).sort(), [
      "User:conversation shop1.conversation",
      "User:generation shop1.generation",
      "User:ingress shop1.ingress-dispatcher",
      "User:ingress shop1.ingress-statuses",
      "User:payment shop1.payment",
      "User:payment shop1.payment.fulfilment",
    ]);
    assert.ok(groups.every((g) => g.operation === AclOperationTypes.READ));
  });

  test("nothing outside the deployment's topics and groups, and no duplicate binding", () => {
    const own = new Set(Object.values(names).flatMap((n) => [n, deadLetterTopic(n)]));
    for (const e of entries)
      if (e.resourceType === AclResourceTypes.TOPIC) assert.ok(own.has(e.resourceName), e.resourceName);
    const keys = entries.map((e) => `${e.principal}|${e.resourceType}|${e.resourceName}|${e.operation}`);
    assert.equal(new Set(keys).size, keys.length);
    assert.deepEqual(
      [...new Set(entries.map((e) => e.principal))].sort(),
      KAFKA_SERVICES.map((s) => `User:${s}`).sort(),
    );
  });

  test("a policy naming an unknown topic or field is refused, naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "access-"));
    const file = join(dir, "access.json");
    const good = JSON.parse(JSON.stringify(loadAccessPolicy()));
    writeFileSync(
      file,
      JSON.stringify({ ...good, generation: { ...good.generation, writes: ["generationResult"] } }),
    );
    assert.throws(() => loadAccessPolicy(file), /generation\.writes\.0/);
    writeFileSync(file, JSON.stringify({ ...good, limiter: { writes: [], reads: {} } }));
    assert.throws(() => loadAccessPolicy(file), /limiter|Unrecognized/);
  });
});

describe("Kafka principals and kafka-acls.sh lines", () => {
  test("the chart's pods are named by their service accounts", () => {
    const acls = kafkaAcls(loadAccessPolicy(), {
      prefix: "taituri.",
      principals: kubernetesPrincipals("shop", "taituri"),
    });
    assert.deepEqual(writersOf(acls, "taituri.generation.requests.v1"), [
      "User:system:serviceaccount:shop:taituri-conversation",
    ]);
  });

  test("each binding is one kafka-acls.sh line, quoted", () => {
    const write = entries.find(
      (e) => e.resourceName === names.generationRequests && e.operation === AclOperationTypes.WRITE,
    );
    assert.ok(write);
    assert.equal(
      aclCommand(write),
      "kafka-acls.sh --bootstrap-server $KAFKA_BROKERS --add --allow-principal 'User:conversation' --operation Write --topic 'shop1.generation.requests.v1' --resource-pattern-type literal",
    );
    const group = entries.find((e) => e.resourceType === AclResourceTypes.GROUP);
    assert.ok(group);
    assert.match(
      aclCommand(group, "b:9092"),
      /^kafka-acls\.sh --bootstrap-server b:9092 .* --operation Read --group 'shop1\./,
    );
  });
});

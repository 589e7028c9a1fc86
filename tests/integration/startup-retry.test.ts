import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { createKafka, EventProducer, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { outbound } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import {
  eventually,
  type FakeGraphApi,
  recipientOf,
  runId,
  startFakeGraphApi,
} from "@taituri/testing/harness";
import kafkajs, { type AclEntry, type Admin } from "kafkajs";

/**
 * A start step that fails its first attempt and succeeds on a later one, in the same process:
 * ingress's dispatcher, on the secured broker, whose consumer group is first refused to ingress
 * (its READ binding withheld, so the group join fails) and then granted. The retried start must
 * then join and send what waited on the outbound topic, without ingress being restarted. A start
 * that is not safe to run twice (handlers, and so their metrics, built inside it) never gets past
 * its second attempt.
 */
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
const run = runId();
const prefix = `startup-retry-${run}.`;
const topics = topicNames(prefix);
/** Ingress's right to join its dispatcher's group, as packages/kafka/data/access.json gives it. */
const dispatcherGroupRead: AclEntry = {
  principal: "User:ingress",
  host: "*",
  resourceType: AclResourceTypes.GROUP,
  resourceName: `${prefix}ingress-dispatcher`,
  resourcePatternType: ResourcePatternTypes.LITERAL,
  operation: AclOperationTypes.READ,
  permissionType: AclPermissionTypes.ALLOW,
};

/** Ingress's log, parsed: the start step's attempts are read from it. */
const lines: Array<Record<string, unknown>> = [];
const logger = createLogger({
  service: "it-startup-retry",
  level: "info",
  destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
});
const dispatcherLines = () => lines.filter((line) => line.step === "dispatcher");

let infra: Infra;
let graph: FakeGraphApi;
let admin: Admin;
let producer: EventProducer;
let ingress: RunningService | undefined;

/** Whether the broker's authorizer holds the dispatcher group's binding (DescribeAcls reads it). */
async function groupReadBound(): Promise<boolean> {
  const { resources } = await admin.describeAcls(dispatcherGroupRead);
  return resources.some((resource) => resource.acls.length > 0);
}

before(async () => {
  infra = await startInfra();
  assert.ok(infra.kafka.secured, "the broker must be secured (ACLs): npm test starts it so");
  graph = await startFakeGraphApi();
  // The super user: it sets the ACLs and plays the conversation service on the outbound topic.
  const kafka = createKafka({ ...infra.kafka.client, clientId: `it-startup-retry-${run}`, logger });
  admin = kafka.admin({ retry: { retries: 3 } });
  await admin.connect();
  await infra.kafka.authorize(prefix);
  await admin.deleteAcls({ filters: [dispatcherGroupRead] });
  await eventually("the group's binding gone", async () => !(await groupReadBound()), 10_000);
  producer = new EventProducer(kafka);
  await producer.connect();
});

after(async () => {
  await ingress?.stop();
  await producer?.disconnect();
  await admin?.disconnect();
  await graph?.close();
  await infra?.stop();
});

test("the dispatcher's start, refused its group at first, succeeds on a retry and sends", async () => {
  ingress = await startIngressService(
    loadIngressConfig({
      ...infra.kafka.settings("ingress"),
      MONGO_URL: infra.mongo.url,
      MONGO_DB: `startup_retry_${run}`,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_PARTITIONS: "1",
      INGRESS_PORT: "0",
      INGRESS_OPS_PORT: "0",
      WHATSAPP_APP_SECRET: "startup-retry-secret",
      WHATSAPP_VERIFY_TOKEN: "verify",
      WHATSAPP_ACCESS_TOKEN: "token",
      WHATSAPP_API_URL: graph.url,
    }),
    logger,
    // Its dispatcher cannot start until the group is granted: returns once it listens.
    { waitForDependencies: false },
  );
  const refused = await eventually(
    "the dispatcher's first start failing",
    () => dispatcherLines().find((line) => line.attempt === 1),
    60_000,
  );
  assert.equal(refused.level, "warn", JSON.stringify(refused));

  // A reply that waits on the topic (created by ingress once Kafka was reached) for the dispatcher.
  const to = `4470091${run.replace(/\D/g, "7").slice(0, 4)}`;
  const message: outbound.OutboundMessage = {
    id: `out-${run}-1`,
    conversationId: `PN9:${to}`,
    phoneNumberId: "PN9",
    to,
    recipientUserId: "",
    replyToMessageId: "",
    lastInboundAt: new Date(Date.now() - 60_000),
    content: { $case: "text", value: { body: "after a retried start", previewUrl: false } },
  };
  await producer.send(topics.outbound, [
    { key: message.conversationId, value: outbound.OutboundMessage.encode(message).finish() },
  ]);

  await admin.createAcls({ acl: [dispatcherGroupRead] });
  await eventually("the group's binding back", groupReadBound, 10_000);
  await eventually(
    "the reply at the Graph API",
    () => graph.sends().some((request) => recipientOf(request.body) === to),
    90_000,
  ).catch((error: unknown) => {
    const said = dispatcherLines().map((line) => [line.msg, (line.err as { message?: string })?.message]);
    const waited = error instanceof Error ? error.message : String(error);
    throw new Error(`${waited}; the dispatcher's start said: ${JSON.stringify(said)}`);
  });
  // The step says so once its statuses consumer has joined too, which may be after the send.
  const up = await eventually("the dispatcher's start step up", () =>
    dispatcherLines().find((line) => typeof line.attempts === "number"),
  );
  assert.ok(Number(up.attempts) >= 2, `started on a retry: ${JSON.stringify(up)}`);
});

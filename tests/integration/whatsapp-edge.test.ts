import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import { createKafka, deadLetterTopic, EventProducer, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import { inbound, outbound } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { at, webhookFixtures } from "@taituri/testing/fixtures";
import {
  eventually,
  type FakeGraphApi,
  readTopic,
  recipientOf,
  runId,
  startFakeGraphApi,
} from "@taituri/testing/harness";
import { signWebhook, statusWebhook, textWebhook } from "@taituri/testing/whatsapp";
import type { Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";

/**
 * The WhatsApp edge on the real broker: what the webhook stores (and refuses), and what the
 * outbound dispatcher sends (and refuses) to a fake Graph API.
 */
const SECRET = "edge-secret";
const run = runId();
const prefix = `edge-${run}.`;
const topics = topicNames(prefix);
const logger = createLogger({ service: "it", level: "silent" });
let infra: Infra;
let graph: FakeGraphApi;
let ingress: RunningService;
let kafka: Kafka;
let producer: EventProducer;
let mongo: MongoClient;
let db: Db;

before(async () => {
  infra = await startInfra();
  graph = await startFakeGraphApi();
  await infra.kafka.authorize(prefix);
  ingress = await startIngressService(
    loadIngressConfig({
      ...infra.kafka.settings("ingress"),
      MONGO_URL: infra.mongo.url,
      MONGO_DB: `edge_${run}`,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_PARTITIONS: "3",
      INGRESS_PORT: "0",
      INGRESS_OPS_PORT: "0",
      WHATSAPP_APP_SECRET: `old-secret,${SECRET}`,
      WHATSAPP_VERIFY_TOKEN: "verify",
      WHATSAPP_ACCESS_TOKEN: "token",
      WHATSAPP_API_URL: graph.url,
    }),
    logger,
  );
  // The test plays the conversation service (outbound messages) and reads ingress's topics: the
  // broker's super user.
  kafka = createKafka({ ...infra.kafka.client, clientId: "edge-test", logger });
  producer = new EventProducer(kafka);
  await producer.connect();
  mongo = new MongoClient(infra.mongo.url);
  db = mongo.db(`edge_${run}`);
});

after(async () => {
  await producer?.disconnect();
  await ingress?.stop();
  await mongo?.close();
  await graph?.close();
  await infra?.stop();
});

const post = (
  body: string,
  signature: string | null = signWebhook(body, SECRET),
  contentType = "application/json",
) =>
  fetch(ingress.endpoints.webhook ?? "", {
    method: "POST",
    headers: { "content-type": contentType, ...(signature ? { "x-hub-signature-256": signature } : {}) },
    body,
  });

async function topicSize(topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

const inboundEvents = (done: (events: inbound.InboundEvent[]) => boolean) =>
  readTopic(kafka, topics.inbound, (records) =>
    done(records.map((r) => inbound.InboundEvent.decode(r.value))),
  ).then((records) => records.map((r) => inbound.InboundEvent.decode(r.value)));

let seq = 0;
function outboundMessage(
  content: outbound.OutboundMessage["content"],
  overrides: Partial<outbound.OutboundMessage> = {},
) {
  seq += 1;
  const to = overrides.to ?? `4470090${String(seq).padStart(4, "0")}`;
  return {
    id: `out-${run}-${seq}`,
    conversationId: `PN9:${to}`,
    phoneNumberId: "PN9",
    to,
    recipientUserId: "",
    replyToMessageId: "",
    lastInboundAt: new Date(Date.now() - 60_000),
    content,
    ...overrides,
  } satisfies outbound.OutboundMessage;
}
const text = (body: string): outbound.OutboundMessage["content"] => ({
  $case: "text",
  value: { body, previewUrl: false },
});
const publish = (...messages: outbound.OutboundMessage[]) =>
  producer.send(
    topics.outbound,
    messages.map((m) => ({ key: m.conversationId, value: outbound.OutboundMessage.encode(m).finish() })),
  );
const metrics = async () => (await fetch(`${ingress.endpoints.ops}/metrics`)).text();
/** Sends addressed to this phone number (`to`) or BSUID (`recipient`). */
const sendsTo = (id: string) => graph.sends().filter((r) => recipientOf(r.body) === id);
const failuresFor = async (outboundId: string) =>
  (
    await inboundEvents((events) => events.some((e) => e.eventId === `delivery-failure:${outboundId}`))
  ).filter((e) => e.eventId === `delivery-failure:${outboundId}`);

describe("webhook", () => {
  test("every kind of webhook reaches the inbound topic normalised, keyed by conversation", async () => {
    for (const fixture of webhookFixtures) {
      const response = await post(JSON.stringify(fixture.body));
      assert.equal(response.status, 200, fixture.name);
    }
    const wanted = new Set(webhookFixtures.flatMap((f) => f.eventIds));
    const events = await inboundEvents((all) => [...wanted].every((id) => all.some((e) => e.eventId === id)));
    for (const fixture of webhookFixtures.filter((f) => f.payload !== "error")) {
      const event = events.find((e) => e.eventId === fixture.eventIds[0]);
      assert.ok(event, fixture.name);
      assert.equal(event.payload?.$case, fixture.payload, fixture.name);
      if (fixture.conversationId) assert.equal(event.conversationId, fixture.conversationId, fixture.name);
      const value = event.payload?.value as unknown;
      if (fixture.content)
        assert.equal((value as inbound.Message).content?.$case, fixture.content, fixture.name);
      for (const [path, expected] of Object.entries(fixture.fields))
        assert.deepEqual(at(value, path), expected, `${fixture.name}: ${path}`);
    }
    const errorEvent = events.find((e) => e.payload?.$case === "error");
    assert.equal(
      at(errorEvent?.payload?.value, "errors.0.title"),
      "We were unable to authenticate the app user",
    );
    const records = await readTopic(kafka, topics.inbound, (r) => r.length >= wanted.size);
    const text = records.find((r) => inbound.InboundEvent.decode(r.value).eventId === "wamid.text");
    assert.equal(text?.key, "PN9:447700900001");
  });

  test("bad requests get their status and nothing is stored", async () => {
    const body = JSON.stringify(textWebhook("hi", { wamid: `wamid.${run}.bad` }));
    const before = [await topicSize(topics.inbound), await topicSize(deadLetterTopic(topics.inbound))];
    assert.equal((await post(body, signWebhook(body, "forged"))).status, 401, "forged");
    assert.equal((await post(body, null)).status, 401, "missing");
    assert.equal((await post(body, "sha256=not-hex")).status, 401, "malformed");
    const big = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [],
      pad: "x".repeat(3 * 1024 * 1024),
    });
    assert.equal((await post(big, signWebhook(big, SECRET))).status, 413, "over 3 MB");
    assert.equal((await post("{not json", signWebhook("{not json", SECRET))).status, 400, "bad JSON");
    assert.equal(
      (await post(body, signWebhook(body, "old-secret"))).status,
      200,
      "the other secret of a rotation",
    );
    await eventually(
      "the rotated-secret webhook stored",
      async () => (await topicSize(topics.inbound)) === (before[0] ?? 0) + 1,
    );
    assert.equal(await topicSize(deadLetterTopic(topics.inbound)), before[1]);
  });

  test("a signed body of a shape we don't know is acknowledged and kept whole on the dead-letter topic", async () => {
    const body = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [{ id: "1", changes: [{ field: "account_update", value: { x: run } }] }],
    });
    assert.equal((await post(body)).status, 200);
    const [dead] = (
      await readTopic(kafka, deadLetterTopic(topics.inbound), (r) =>
        r.some((x) => x.value.toString() === body),
      )
    ).filter((x) => x.value.toString() === body);
    assert.match(dead?.headers["dlq-error"] ?? "", /unhandled field "account_update"/);
  });

  test("an unknown shape of 2.5 MB (over Kafka's 1 MiB default) is still kept whole", async () => {
    const body = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [{ id: "2", changes: [{ field: "history", value: { blob: "y".repeat(2_500_000), run } }] }],
    });
    assert.equal((await post(body)).status, 200);
    const kept = await readTopic(kafka, deadLetterTopic(topics.inbound), (r) =>
      r.some((x) => x.value.length === Buffer.byteLength(body)),
    );
    assert.ok(kept.some((x) => x.value.toString() === body));
  });

  test("a body with one event out of range: the good one stored, the bad one dead-lettered with its reason, 200", async () => {
    const json = textWebhook("fine", { wamid: `wamid.${run}.fine`, waId: "447700900321" });
    const value = json.entry[0]?.changes[0]?.value as { messages: Record<string, unknown>[] } | undefined;
    const [good] = value?.messages ?? [];
    value?.messages.push({ ...good, id: `wamid.${run}.poison`, timestamp: "100000000000000000" });
    const body = JSON.stringify(json);
    assert.equal((await post(body)).status, 200);
    const events = await inboundEvents((all) => all.some((e) => e.eventId === `wamid.${run}.fine`));
    // This body's two messages only: earlier tests of the file store other ids of this run.
    const mine = events.filter(
      (e) => e.eventId === `wamid.${run}.fine` || e.eventId === `wamid.${run}.poison`,
    );
    assert.deepEqual(
      mine.map((e) => e.eventId),
      [`wamid.${run}.fine`],
    );
    const dead = (
      await readTopic(kafka, deadLetterTopic(topics.inbound), (r) =>
        r.some((x) => x.value.toString() === body),
      )
    ).find((x) => x.value.toString() === body);
    assert.match(dead?.headers["dlq-error"] ?? "", /timestamp 100000000000000000 out of range/);
  });
});

describe("outbound dispatcher", () => {
  test("an outbound event delivered three times is sent once", async () => {
    const message = outboundMessage(text("Only once"));
    await publish(message, message);
    await publish(message);
    await eventually("the send", () => sendsTo(message.to).length >= 1);
    await eventually("the send recorded", () =>
      db.collection("ingress_outbound_sent").findOne({ _id: message.id as never }),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(sendsTo(message.to).length, 1);
  });

  test("a 130429 (throughput) is retried with backoff, and the shopper's order holds", async () => {
    const first = outboundMessage(text("first"));
    const second = outboundMessage(text("second"), { to: first.to, conversationId: first.conversationId });
    graph.failNext(1, 400, { code: 130429, message: "Rate limit hit" });
    await publish(first, second);
    await eventually("both sends", () => sendsTo(first.to).filter((r) => r.status === 200).length === 2);
    const attempts = sendsTo(first.to).map(
      (r) => `${(r.body as { text: { body: string } }).text.body}:${r.status}`,
    );
    assert.deepEqual(attempts, ["first:400", "first:200", "second:200"]);
  });

  test("outside the 24-hour window a free-form message is refused before Meta; a template goes", async () => {
    const stale = new Date(Date.now() - 25 * 3600 * 1000);
    const late = outboundMessage(text("Still there?"), { lastInboundAt: stale });
    const template = outboundMessage(
      { $case: "template", value: { name: "design_ready", language: "en_US", bodyParameters: ["Ana"] } },
      { lastInboundAt: stale, to: late.to, conversationId: late.conversationId },
    );
    await publish(late, template);
    await eventually("the template", () => sendsTo(late.to).length === 1);
    assert.equal(at(sendsTo(late.to)[0]?.body, "type"), "template");
    const [failure] = await failuresFor(late.id);
    assert.equal(failure?.conversationId, late.conversationId);
    assert.equal(
      at(failure?.payload?.value, "reason"),
      inbound.DeliveryFailureReason.DELIVERY_FAILURE_REASON_OUTSIDE_WINDOW,
    );
    const dead = await readTopic(kafka, deadLetterTopic(topics.outbound), (r) =>
      r.some((x) => outbound.OutboundMessage.decode(x.value).id === late.id),
    );
    assert.match(
      dead.find((x) => outbound.OutboundMessage.decode(x.value).id === late.id)?.headers["dlq-error"] ?? "",
      /24 h/,
    );
  });

  test("content WhatsApp would refuse never reaches Meta, and the conversation is told why", async () => {
    const tooMany = outboundMessage({
      $case: "buttons",
      value: {
        body: "Pick",
        header: "",
        footer: "",
        buttons: [1, 2, 3, 4].map((i) => ({ id: `b${i}`, title: `B${i}` })),
      },
    });
    await publish(tooMany);
    const [failure] = await failuresFor(tooMany.id);
    assert.equal(
      at(failure?.payload?.value, "reason"),
      inbound.DeliveryFailureReason.DELIVERY_FAILURE_REASON_INVALID_CONTENT,
    );
    assert.match(String(at(failure?.payload?.value, "detail")), /4 buttons, need 1 to 3/);
    assert.equal(sendsTo(tooMany.to).length, 0);
  });

  test("a permanent Meta error is not retried: recorded with its code, dead-lettered, reported", async () => {
    const message = outboundMessage(text("to nowhere"));
    graph.failNext(1, 400, { code: 131026, message: "Message undeliverable" });
    await publish(message);
    const [failure] = await failuresFor(message.id);
    assert.equal(at(failure?.payload?.value, "code"), 131026);
    const claim = await db.collection("ingress_outbound_sends").findOne({ _id: message.id as never });
    assert.equal(claim?.status, "failed");
    assert.equal(claim?.error?.code, 131026);
    assert.equal(sendsTo(message.to).length, 1);
  });

  test("interactive buttons, lists and CTA URLs go out in Meta's format", async () => {
    const to = "447700999001";
    const same = { to, conversationId: `PN9:${to}` };
    await publish(
      outboundMessage(
        {
          $case: "buttons",
          value: {
            body: "Pick a design",
            header: "",
            footer: "",
            buttons: [{ id: "r1:pick:1", title: "Design 1" }],
          },
        },
        same,
      ),
      outboundMessage(
        {
          $case: "list",
          value: {
            body: "Choose a theme",
            header: "",
            footer: "",
            button: "Themes",
            sections: [{ title: "", rows: [{ id: "theme:birthday", title: "Birthday", description: "" }] }],
          },
        },
        same,
      ),
      outboundMessage(
        {
          $case: "ctaUrl",
          value: {
            body: "Pay",
            header: "",
            footer: "",
            displayText: "Pay now",
            url: "https://pay.example/1",
          },
        },
        same,
      ),
    );
    await eventually("three sends", () => sendsTo(to).length === 3);
    assert.deepEqual(
      sendsTo(to).map((r) => (r.body as { interactive: { type: string } }).interactive.type),
      ["button", "list", "cta_url"],
    );
  });

  test("an image from our store is uploaded to /media once and sent by id", async () => {
    const images = new ImageStore(db);
    await images.put(`img-${run}`, {
      bytes: Buffer.from("\x89PNG fake bytes"),
      contentType: "image/png",
      filename: "design-1.png",
    });
    const message = outboundMessage({
      $case: "image",
      value: { source: { $case: "storedImageId", value: `img-${run}` }, caption: "Design 1" },
    });
    await publish(message);
    await publish(message);
    await eventually("the image send", () => sendsTo(message.to).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const uploads = graph.uploads().filter((u) => String(u.body).includes("design-1.png"));
    assert.equal(uploads.length, 1);
    assert.match(String(uploads[0]?.headers["content-type"]), /^multipart\/form-data; boundary=/);
    assert.match(String(uploads[0]?.body), /name="messaging_product"\r\n\r\nwhatsapp/);
    const sentImage = sendsTo(message.to)[0]?.body;
    assert.match(String(at(sentImage, "image.id")), /^media\.fake\.\d+$/);
    assert.equal(at(sentImage, "image.caption"), "Design 1");
  });

  test("delivery statuses only move forward; a failed status records Meta's code and tells the conversation", async () => {
    const message = outboundMessage(text("status me"));
    await publish(message);
    const claim = await eventually("the send recorded", () =>
      db.collection("ingress_outbound_sent").findOne({ _id: message.id as never }),
    );
    const wamid = String(claim.wamid);
    const statusOf = async () =>
      (await db.collection("ingress_message_statuses").findOne({ _id: wamid as never }))?.status;
    for (const status of ["sent", "read"] as const) {
      assert.equal(
        (await post(JSON.stringify(statusWebhook(wamid, status, { phoneNumberId: "PN9", waId: message.to }))))
          .status,
        200,
      );
    }
    await eventually("read", async () => (await statusOf()) === "read");
    // A late "delivered" must not overwrite "read".
    assert.equal(
      (
        await post(
          JSON.stringify(statusWebhook(wamid, "delivered", { phoneNumberId: "PN9", waId: message.to })),
        )
      ).status,
      200,
    );
    const other = outboundMessage(text("will fail"));
    await publish(other);
    const otherWamid = String(
      (
        await eventually("the second send recorded", () =>
          db.collection("ingress_outbound_sent").findOne({ _id: other.id as never }),
        )
      ).wamid,
    );
    const failed = statusWebhook(otherWamid, "failed", {
      phoneNumberId: "PN9",
      waId: other.to,
      errors: [{ code: 131047, title: "Re-engagement message" }],
    });
    assert.equal((await post(JSON.stringify(failed))).status, 200);
    const [failure] = await failuresFor(other.id);
    assert.equal(at(failure?.payload?.value, "code"), 131047);
    const state = await db.collection("ingress_message_statuses").findOne({ _id: otherWamid as never });
    assert.equal(state?.status, "failed");
    assert.equal(state?.errors?.[0]?.code, 131047);
    // Once the late "delivered" has been handled (counted either way), the state is still "read".
    await eventually("the late delivered handled", async () =>
      /outbound_statuses_total\{[^}]*status="delivered"/.test(await metrics()),
    );
    assert.match(
      await metrics(),
      /outbound_statuses_total\{(?=[^}]*status="delivered")(?=[^}]*outcome="stale")[^}]*\} 1/,
    );
    assert.equal(await statusOf(), "read");
  });

  test("a claim whose lease ran out is taken over and sent, unless the message is already recorded sent", async () => {
    // What a dispatcher leaves when it dies after its claim: before sending, and after Meta took it.
    const unsent = outboundMessage(text("taken over"));
    const alreadySent = outboundMessage(text("sent before the crash"));
    const after = outboundMessage(text("next in line"), {
      to: alreadySent.to,
      conversationId: alreadySent.conversationId,
    });
    const expired = new Date(Date.now() - 60_000);
    for (const m of [unsent, alreadySent])
      await db.collection("ingress_outbound_sends").insertOne({
        _id: m.id as never,
        conversationId: m.conversationId,
        status: "sending",
        leaseUntil: expired,
        attempts: 1,
        createdAt: expired,
        updatedAt: expired,
      });
    await db.collection("ingress_outbound_sent").insertOne({
      _id: alreadySent.id as never,
      wamid: `wamid.before-crash.${run}`,
      conversationId: alreadySent.conversationId,
      at: expired,
    });
    await publish(unsent, alreadySent, after);
    await eventually("the taken-over send", () => sendsTo(unsent.to).length >= 1);
    // Same conversation, so "next in line" goes only after the already-sent one was handled.
    await eventually("the next message", () => sendsTo(after.to).length >= 1);
    assert.deepEqual(
      sendsTo(after.to).map((r) => (r.body as { text?: { body?: string } }).text?.body),
      ["next in line"],
    );
    assert.equal(sendsTo(unsent.to).length, 1);
  });

  test("a shopper with a BSUID is sent to with `recipient` and no `to`, phone number known or not", async () => {
    const userId = `US.${run}01`;
    const bsuidOnly = outboundMessage(text("by BSUID"), {
      to: "",
      recipientUserId: userId,
      conversationId: `PN9:${userId}`,
    });
    const both = outboundMessage(text("by BSUID, number known"), {
      recipientUserId: `US.${run}02`,
      conversationId: `PN9:US.${run}02`,
    });
    await publish(bsuidOnly, both);
    await eventually("both sends", () => sendsTo(userId).length === 1 && sendsTo(`US.${run}02`).length === 1);
    for (const [send] of [sendsTo(userId), sendsTo(`US.${run}02`)]) {
      assert.equal(send?.status, 200);
      assert.equal(at(send?.body, "to"), undefined);
      assert.match(String(at(send?.body, "recipient")), /^US\./);
    }
    assert.equal(sendsTo(both.to).length, 0);
    await eventually("the sends recorded", () =>
      db.collection("ingress_outbound_sent").findOne({ _id: both.id as never }),
    );
  });

  test("Meta's 131062 for a BSUID: sent again to the phone number when there is one, once", async () => {
    const userId = `US.${run}03`;
    graph.refuseUserIds([userId]);
    const message = outboundMessage(text("BSUID refused"), {
      recipientUserId: userId,
      conversationId: `PN9:${userId}`,
    });
    await publish(message);
    const sent = await eventually("the send recorded", () =>
      db.collection("ingress_outbound_sent").findOne({ _id: message.id as never }),
    );
    const attempts = [...sendsTo(userId), ...sendsTo(message.to)].sort((a, b) => a.at - b.at);
    assert.deepEqual(
      attempts.map((r) => [r.status, at(r.body, "to"), at(r.body, "recipient")]),
      [
        [400, undefined, userId],
        [200, message.to, undefined],
      ],
    );
    assert.match(String(sent.wamid), /^wamid\.fake\./);
    // A redelivery sends nothing more: the claim and the record hold.
    await publish(message);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(sendsTo(message.to).length, 1);
    assert.equal(sendsTo(userId).length, 1);
  });

  test("Meta's 131062 for a BSUID and no phone number: a delivery failure, and the message dead-lettered", async () => {
    const userId = `US.${run}04`;
    graph.refuseUserIds([userId]);
    const message = outboundMessage(text("nowhere to go"), {
      to: "",
      recipientUserId: userId,
      conversationId: `PN9:${userId}`,
    });
    await publish(message);
    const [failure] = await failuresFor(message.id);
    assert.equal(failure?.conversationId, message.conversationId);
    assert.equal(
      at(failure?.payload?.value, "reason"),
      inbound.DeliveryFailureReason.DELIVERY_FAILURE_REASON_REJECTED,
    );
    assert.equal(at(failure?.payload?.value, "code"), 131062);
    assert.match(String(at(failure?.payload?.value, "detail")), /BSUID\) recipient is not supported here/);
    const dead = await readTopic(kafka, deadLetterTopic(topics.outbound), (r) =>
      r.some((x) => outbound.OutboundMessage.decode(x.value).id === message.id),
    );
    assert.match(
      dead.find((x) => outbound.OutboundMessage.decode(x.value).id === message.id)?.headers["dlq-error"] ??
        "",
      /131062/,
    );
    assert.equal(sendsTo(userId).length, 1, "not retried");
  });
});

describe("metrics", () => {
  test("ingress exports what operators tune it with", async () => {
    const text = await metrics();
    for (const pattern of [
      /webhook_requests_total\{[^}]*outcome="accepted"[^}]*\} [1-9]/,
      /webhook_requests_total\{[^}]*outcome="bad_signature",reason="mismatch"[^}]*\} [1-9]/,
      /webhook_requests_total\{[^}]*outcome="too_large"[^}]*\} 1/,
      /webhook_ack_seconds_bucket\{[^}]*le="0\.01"[^}]*\} [1-9]/,
      /webhook_events_total\{[^}]*kind="message\.media"[^}]*\} [1-9]/,
      /webhook_events_total\{[^}]*kind="status"[^}]*\} [1-9]/,
      /outbound_sends_total\{[^}]*type="text",outcome="retry",code="130429"[^}]*\} 1/,
      /outbound_sends_total\{[^}]*type="text",outcome="rejected",code="131026"[^}]*\} 1/,
      /outbound_sends_total\{[^}]*type="text",outcome="outside_window"[^}]*\} 1/,
      /outbound_sends_total\{[^}]*type="text",outcome="bsuid_refused",code="131062",recipient="bsuid"[^}]*\} 1/,
      /outbound_sends_total\{[^}]*type="text",outcome="rejected",code="131062",recipient="bsuid"[^}]*\} 1/,
      /outbound_sends_total\{[^}]*type="text",outcome="sent",code="",recipient="bsuid"[^}]*\} [1-9]/,
      /outbound_send_seconds_count\{[^}]*\} [1-9]/,
      /outbound_statuses_total\{(?=[^}]*status="delivered")(?=[^}]*outcome="stale")[^}]*\} 1/,
      /kafka_consumer_lag\{[^}]*topic="edge-[^"]+\.outbound\.v1"[^}]*\} \d+/,
    ]) {
      assert.match(text, pattern);
    }
  });
});

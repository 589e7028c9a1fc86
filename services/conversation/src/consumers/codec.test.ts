import assert from "node:assert/strict";
import { test } from "node:test";
import {
  encodeRecord,
  Header,
  type IncomingMessage,
  PermanentError,
  Records,
  topicNames,
} from "@taituri/kafka";
import { inbound, outbound, payment } from "@taituri/proto";
import type { ConversationDoc } from "../adapters/store.ts";
import type { Effect } from "../domain/machine.ts";
import { contactOf, decode, nextContact, toOutbox } from "./codec.ts";

const topics = topicNames("t.");
const at = new Date("2026-12-07T10:00:00Z");

function incoming(
  topic: string,
  record: { value: Buffer; headers: Record<string, string> },
): IncomingMessage {
  return { topic, partition: 0, offset: "7", key: "PN:US.1", ...record };
}

const message = (
  content: inbound.Message["content"],
  from = { waId: "15550001", userId: "US.1", profileName: "Ana" },
) =>
  incoming(
    topics.inbound,
    encodeRecord(Records.inboundEvent, {
      eventId: "wamid.1",
      conversationId: "PN:US.1",
      business: { phoneNumberId: "PN", displayPhoneNumber: "", wabaId: "" },
      receivedAt: at,
      payload: {
        $case: "message",
        value: { id: "wamid.1", from, sentAt: at, contextMessageId: "", forwarded: false, content },
      },
    }),
  );

test("a shopper's message: its wamid as the key, both ids, the input the machine reads", () => {
  const arrival = decode(message({ $case: "text", value: { body: "hi" } }), topics);
  assert.equal(arrival?.eventId, "wamid.1");
  assert.deepEqual(arrival?.contact, { waId: "15550001", userId: "US.1" });
  assert.equal(arrival?.shopperId, "US.1", "the BSUID first, like the key");
  assert.deepEqual(arrival?.event, {
    type: "message",
    messageId: "wamid.1",
    at: at.getTime(),
    shopperName: "Ana",
    input: { kind: "text", text: "hi" },
  });
  assert.equal(arrival?.sentAt?.getTime(), at.getTime());
  const voice = decode(
    message({
      $case: "media",
      value: {
        kind: inbound.MediaKind.MEDIA_KIND_AUDIO,
        mediaId: "m",
        mimeType: "",
        sha256: "",
        caption: "",
        filename: "",
        voice: true,
      },
    }),
    topics,
  );
  assert.deepEqual(voice?.event.type === "message" && voice.event.input, { kind: "media", media: "voice" });
});

test("a number-change notice carries the new ids and does not open the 24-hour window", () => {
  const arrival = decode(
    message({
      $case: "system",
      value: { type: "user_changed_number", body: "", newWaId: "15550002", newUserId: "US.2" },
    }),
    topics,
  );
  assert.deepEqual(arrival?.identityChange, {
    type: "user_changed_number",
    waId: "15550002",
    userId: "US.2",
  });
  assert.equal(arrival?.sentAt, undefined);
  assert.deepEqual(arrival?.event.type === "message" && arrival.event.input, {
    kind: "other",
    type: "system.user_changed_number",
  });
  // A phone number missing from a later webhook is still the shopper's; a number change replaces both.
  assert.deepEqual(
    nextContact({ waId: "15550001", userId: "US.1" }, {
      ...arrival,
      identityChange: undefined,
      contact: { userId: "US.1" },
    } as never),
    {
      waId: "15550001",
      userId: "US.1",
    },
  );
  assert.deepEqual(nextContact({ waId: "15550001", userId: "US.1" }, arrival as never), {
    waId: "15550002",
    userId: "US.2",
  });
  assert.deepEqual(
    nextContact({ waId: "15550001", userId: "US.1" }, {
      ...arrival,
      identityChange: { type: "user_changed_number", waId: "15550002", userId: "" },
    } as never),
    { waId: "15550002" },
    "the old BSUID goes with the old number",
  );
});

test("conversations stored before contacts: a BSUID by its dot, a phone number by its digits", () => {
  assert.deepEqual(contactOf({ shopperId: "US.1" } as ConversationDoc), { userId: "US.1" });
  assert.deepEqual(contactOf({ shopperId: "15550001" } as ConversationDoc), { waId: "15550001" });
});

test("payment events keyed by order and outcome; a refund once per order", () => {
  const event = (outcome: payment.PaymentEvent["outcome"]) =>
    decode(
      incoming(
        topics.paymentEvents,
        encodeRecord(Records.paymentEvent, {
          orderId: "PN:US.1/o1",
          conversationId: "PN:US.1",
          orderNumber: "7KQ2-M9XD",
          outcome,
        }),
      ),
      topics,
    );
  assert.equal(
    event({ $case: "linkCreated", value: { url: "https://pay/1" } })?.eventId,
    "payment:PN:US.1/o1:link:https://pay/1",
  );
  assert.equal(event({ $case: "succeeded", value: {} })?.eventId, "payment:PN:US.1/o1:succeeded");
  assert.equal(event({ $case: "expired", value: {} })?.eventId, "payment:PN:US.1/o1:expired:7");
  const refunded = event({
    $case: "refunded",
    value: {
      reason: payment.RefundReason.REFUND_REASON_CANCELLED_BEFORE_PAYMENT,
      amount: 1990,
      currency: "EUR",
    },
  });
  assert.equal(refunded?.eventId, "payment:PN:US.1/o1:refunded");
  assert.deepEqual(refunded?.event, {
    type: "payment_refunded",
    orderId: "PN:US.1/o1",
    orderNumber: "7KQ2-M9XD",
    reason: "cancelled_before_payment",
    amount: 1990,
    currency: "EUR",
  });
  // Shipped once per order; the tracking link only when the shop gave one.
  const shipped = event({ $case: "shipped", value: { trackingUrl: "https://track.example/7KQ2" } });
  assert.equal(shipped?.eventId, "payment:PN:US.1/o1:shipped");
  assert.deepEqual(shipped?.event, {
    type: "payment_shipped",
    orderId: "PN:US.1/o1",
    orderNumber: "7KQ2-M9XD",
    trackingUrl: "https://track.example/7KQ2",
  });
  assert.deepEqual(event({ $case: "shipped", value: { trackingUrl: "" } })?.event, {
    type: "payment_shipped",
    orderId: "PN:US.1/o1",
    orderNumber: "7KQ2-M9XD",
  });
});

test("a record of another kind on a topic is permanent", () => {
  const wrong = incoming(
    topics.inbound,
    encodeRecord(Records.cancelOrder, { orderId: "o", conversationId: "c", reason: 1 }),
  );
  assert.throws(() => decode(wrong, topics), PermanentError);
});

test("effects become records: replies to the BSUID and the phone number, cancellations typed", () => {
  const c = {
    conversationId: "PN:US.1",
    phoneNumberId: "PN",
    shopperId: "US.1",
    contact: { waId: "15550001", userId: "US.1" },
    shopId: "demo",
    lastInboundAt: at,
    at,
  };
  const reply = toOutbox({ type: "send", message: { kind: "text", text: "Hi" } }, "wamid.1:0", topics, c);
  assert.equal(reply?.topic, topics.outbound);
  assert.equal(reply?.headers[Header.type], Records.outboundMessage.contentType);
  const sent = outbound.OutboundMessage.decode(reply?.value ?? Buffer.alloc(0));
  assert.deepEqual([sent.id, sent.to, sent.recipientUserId], ["wamid.1:0", "15550001", "US.1"]);
  const cancel = toOutbox(
    { type: "cancel_order", orderId: "PN:US.1/o1", reason: "replaced" },
    "wamid.2:0",
    topics,
    c,
  );
  assert.equal(cancel?.topic, topics.paymentRequests);
  assert.equal(cancel?.headers[Header.type], Records.cancelOrder.contentType);
  assert.equal(
    payment.CancelOrder.decode(cancel?.value ?? Buffer.alloc(0)).reason,
    payment.CancelReason.CANCEL_REASON_REPLACED,
  );
  assert.equal(toOutbox({ type: "cancel_timer", timerId: "x" }, "e:0", topics, c), undefined);
});

test("a payment request carries where the gift goes and for whom", () => {
  const c = {
    conversationId: "PN:US.1",
    phoneNumberId: "PN",
    shopperId: "US.1",
    contact: { waId: "15550001" },
    shopId: "demo",
    lastInboundAt: at,
    at,
  };
  const request = (delivery: Extract<Effect, { type: "request_payment" }>["delivery"]) => {
    const entry = toOutbox(
      {
        type: "request_payment",
        orderId: "PN:US.1/o1",
        designId: "d2",
        imageId: "img2",
        productId: "mug-11oz",
        amount: 1990,
        currency: "EUR",
        recipient: "Grandma Rosa",
        delivery,
      },
      "wamid.3:0",
      topics,
      c,
    );
    assert.equal(entry?.topic, topics.paymentRequests);
    assert.equal(entry?.headers[Header.type], Records.paymentRequest.contentType);
    return payment.PaymentRequest.decode(entry?.value ?? Buffer.alloc(0));
  };
  const posted = request({
    method: "address",
    name: "Ana López",
    line1: "Calle Mayor 1",
    city: "Madrid",
    postcode: "28013",
    country: "ES",
  });
  assert.equal(posted.recipient, "Grandma Rosa");
  assert.deepEqual(posted.delivery, {
    method: {
      $case: "address",
      value: {
        name: "Ana López",
        line1: "Calle Mayor 1",
        line2: "",
        city: "Madrid",
        postcode: "28013",
        country: "ES",
      },
    },
  });
  assert.equal(posted.amount, 1990);
  const collected = request({ method: "pickup", locationId: "madrid-centro", name: "Leo" });
  assert.deepEqual(collected.delivery, {
    method: { $case: "pickup", value: { locationId: "madrid-centro", name: "Leo" } },
  });
});

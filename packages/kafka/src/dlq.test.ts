import assert from "node:assert/strict";
import { test } from "node:test";
import { pseudonym } from "@taituri/logging";
import { outbound } from "@taituri/proto/events";
import type { IHeaders, KafkaMessage } from "kafkajs";
import { deadLetterOf } from "./dead-letter.ts";
import {
  decodeDeadLetterValue,
  describeDeadLetter,
  notReplayable,
  parseDlqCommand,
  parseSince,
  REPLAYED_FROM_HEADER,
  readDeadLetter,
  replayIdOf,
  replayMessageOf,
  resolveTopics,
  selectDeadLetters,
  summarize,
  UsageError,
} from "./dlq.ts";
import { encodeRecord, Records } from "./records.ts";

const now = new Date("2026-12-07T12:00:00Z");

test("parseSince takes ISO times and durations back from now, and nothing else", () => {
  assert.equal(parseSince("2026-12-07T09:30:00Z", now).toISOString(), "2026-12-07T09:30:00.000Z");
  assert.equal(parseSince("2026-12-06", now).toISOString(), "2026-12-06T00:00:00.000Z");
  assert.equal(parseSince("90m", now).toISOString(), "2026-12-07T10:30:00.000Z");
  assert.equal(parseSince("2h", now).toISOString(), "2026-12-07T10:00:00.000Z");
  assert.equal(parseSince("7d", now).toISOString(), "2026-11-30T12:00:00.000Z");
  assert.equal(parseSince("30s", now).toISOString(), "2026-12-07T11:59:30.000Z");
  for (const bad of ["yesterday", "2h30m", "12/7/2026", "2026", "-2h", "2026-13-45T99:00Z", ""])
    assert.throws(() => parseSince(bad, now), UsageError, bad);
});

test("parseDlqCommand: the three commands and their options", () => {
  assert.deepEqual(parseDlqCommand(["list"], now), { command: "list", json: false });
  assert.deepEqual(parseDlqCommand(["list", "--topic", "inbound", "--since", "1h", "--json"], now), {
    command: "list",
    topic: "inbound",
    since: new Date("2026-12-07T11:00:00Z"),
    json: true,
  });
  assert.deepEqual(parseDlqCommand(["show", "taituri.inbound.v1.dlq", "0:42"], now), {
    command: "show",
    topic: "taituri.inbound.v1.dlq",
    partition: 0,
    offset: "42",
    json: false,
  });
  assert.deepEqual(parseDlqCommand(["replay", "--dry-run", "--since", "2026-12-07T00:00Z"], now), {
    command: "replay",
    since: new Date("2026-12-07T00:00:00Z"),
    dryRun: true,
    json: false,
  });
  assert.deepEqual(parseDlqCommand(["replay"], now), { command: "replay", dryRun: false, json: false });
  assert.deepEqual(parseDlqCommand(["--help"], now), { command: "help" });
});

test("parseDlqCommand refuses what it would have to guess at", () => {
  const refused: string[][] = [
    [],
    ["purge"],
    ["list", "extra"],
    ["list", "--dry-run"],
    ["list", "--since", "soon"],
    ["list", "--topic", " "],
    ["list", "--unknown"],
    ["show"],
    ["show", "taituri.inbound.v1.dlq"],
    ["show", "taituri.inbound.v1.dlq", "42"],
    ["show", "taituri.inbound.v1.dlq", "0:x"],
    ["show", "taituri.inbound.v1.dlq", "0:1", "0:2"],
    ["show", "taituri.inbound.v1.dlq", "0:1", "--since", "1h"],
    ["replay", "now"],
  ];
  for (const argv of refused) assert.throws(() => parseDlqCommand(argv, now), UsageError, argv.join(" "));
});

test("resolveTopics: every dead-letter topic, or the one named by key, name or dead-letter name", () => {
  const all = resolveTopics("p.", undefined);
  assert.equal(all.length, 7);
  assert.ok(all.every((t) => t.startsWith("p.") && t.endsWith(".dlq")));
  for (const name of ["inbound", "p.inbound.v1", "p.inbound.v1.dlq"])
    assert.deepEqual(resolveTopics("p.", name), ["p.inbound.v1.dlq"]);
  assert.deepEqual(resolveTopics("p.", "paymentRequests"), ["p.payment.requests.v1.dlq"]);
  // Another deployment's topic, or a topic that is no dead letter's source, is refused.
  for (const name of ["q.inbound.v1", "inbound.v1", "p.dlq.replays", "toString"])
    assert.throws(() => resolveTopics("p.", name), UsageError, name);
});

const phone = "34600111222";
/** A record as kafkajs fetches it from a record batch (the format with headers). */
type Fetched = KafkaMessage & { headers: IHeaders };
const message = (overrides: Partial<Fetched> = {}): Fetched => ({
  key: Buffer.from(`PN1:${phone}`),
  value: Buffer.from("not protobuf"),
  timestamp: String(Date.parse("2026-12-07T08:00:00Z")),
  attributes: 0,
  offset: "17",
  headers: { traceparent: Buffer.from("00-abc-def-01"), "content-type": Buffer.from("x") },
  ...overrides,
});

/** A dead letter as the consumer writes it (deadLetterOf), read back at `offset` of p.inbound.v1.dlq. */
function deadLetterAt(offset: string, at: string, source = message()) {
  const written = deadLetterOf(source, {
    topic: "p.inbound.v1",
    partition: 2,
    reason: `no conversation for ${phone}`,
    error: new Error(`PermanentError: ${phone} unknown`),
    at: new Date(at),
  });
  return readDeadLetter("p.inbound.v1.dlq", 0, {
    ...source,
    offset,
    timestamp: String(Date.parse(at) + 5),
    key: Buffer.from(written.key),
    value: Buffer.from(written.value),
    headers: Object.fromEntries(Object.entries(written.headers ?? {}).map(([k, v]) => [k, Buffer.from(v)])),
  });
}

test("a dead letter read back: where it came from, why, and when", () => {
  const letter = deadLetterAt("3", "2026-12-07T08:00:01Z");
  assert.deepEqual(letter.source, { topic: "p.inbound.v1", partition: 2, offset: "17" });
  assert.equal(letter.at.toISOString(), "2026-12-07T08:00:01.000Z");
  assert.equal(replayIdOf(letter), "p.inbound.v1.dlq:0:3");
  assert.equal(notReplayable(letter), undefined);
  // A record without the headers (written by hand) still reads, dated by its timestamp, but no
  // consumer read it from the topic: it is not replayed there.
  const bare = readDeadLetter("p.inbound.v1.dlq", 0, message({ headers: {} }));
  assert.equal(bare.source.topic, "");
  assert.equal(bare.at.toISOString(), "2026-12-07T08:00:00.000Z");
  assert.match(notReplayable(bare) ?? "", /not a record a consumer read/);
  assert.match(notReplayable({ ...letter, dlqTopic: "p.outbound.v1.dlq" }) ?? "", /is not the topic of/);
});

test("what list shows names no shopper: the key and the texts as pseudonyms", () => {
  const shown = describeDeadLetter(deadLetterAt("3", "2026-12-07T08:00:01Z"));
  assert.equal(shown.key, `PN1:${pseudonym(phone)}`);
  assert.equal(shown.source, "p.inbound.v1 2:17");
  assert.equal(shown.position, "0:3");
  assert.doesNotMatch(JSON.stringify(shown), new RegExp(phone));
  assert.match(shown.reason, /no conversation for p[0-9a-f]{16}/);
});

test("selection by time, and the summary of what is selected", () => {
  const letters = [
    deadLetterAt("0", "2026-12-07T08:00:00Z"),
    deadLetterAt("1", "2026-12-07T10:00:00Z"),
    deadLetterAt("2", "2026-12-07T11:30:00Z"),
  ];
  assert.deepEqual(
    selectDeadLetters(letters, { since: parseSince("2h", now) }).map((l) => l.offset),
    ["1", "2"],
  );
  assert.equal(selectDeadLetters(letters, {}).length, 3);
  assert.deepEqual(summarize("p.inbound.v1.dlq", letters), {
    dlqTopic: "p.inbound.v1.dlq",
    count: 3,
    oldest: "2026-12-07T08:00:00.000Z",
    newest: "2026-12-07T11:30:00.000Z",
  });
  assert.deepEqual(summarize("p.inbound.v1.dlq", []), { dlqTopic: "p.inbound.v1.dlq", count: 0 });
});

test("a replay is the record as it was: key, value, its own headers, and where it was replayed from", () => {
  const letter = deadLetterAt("3", "2026-12-07T08:00:01Z");
  const replay = replayMessageOf(letter);
  assert.equal(replay.key, `PN1:${phone}`);
  assert.deepEqual(replay.value, Buffer.from("not protobuf"));
  assert.deepEqual(replay.headers, {
    traceparent: "00-abc-def-01",
    "content-type": "x",
    [REPLAYED_FROM_HEADER]: "p.inbound.v1.dlq:0:3",
  });
});

test("show decodes the value as its topic's record, ids redacted, or says why it cannot", () => {
  const record = encodeRecord(Records.outboundMessage, {
    ...outbound.OutboundMessage.fromPartial({
      id: "wamid.1:0",
      conversationId: `PN1:${phone}`,
      phoneNumberId: "PN1",
      to: phone,
      content: { $case: "text", value: { body: `call me on +${phone}` } },
    }),
  });
  const source = message({
    value: record.value,
    headers: Object.fromEntries(Object.entries(record.headers).map(([k, v]) => [k, Buffer.from(v)])),
  });
  const letter = {
    ...readDeadLetter("p.outbound.v1.dlq", 0, source),
    source: { topic: "p.outbound.v1", partition: 0, offset: "17" },
  };
  const decoded = decodeDeadLetterValue(letter, "p.");
  assert.ok("messageType" in decoded, JSON.stringify(decoded));
  assert.equal(decoded.messageType, "outbound.v1.OutboundMessage");
  const text = JSON.stringify(decoded.value);
  assert.doesNotMatch(text, new RegExp(phone));
  assert.match(text, new RegExp(pseudonym(phone)));
  assert.match(text, /call me on/);
  // Message ids are base64 of the shopper's number at Meta: pseudonyms too.
  assert.doesNotMatch(text, /wamid\.1/);
  assert.match(text, new RegExp(pseudonym("wamid.1")));
});

test("an unreadable webhook body ingress kept is shown as JSON, ids redacted, and is not replayable", () => {
  const body = {
    entry: [{ changes: [{ value: { contacts: [{ wa_id: phone }], messages: [{ kind: "new" }] } }] }],
  };
  const letter = readDeadLetter(
    "p.inbound.v1.dlq",
    0,
    message({
      key: Buffer.from(""),
      value: Buffer.from(JSON.stringify(body)),
      headers: {
        "content-type": Buffer.from("application/json"),
        "dlq-reason": Buffer.from("unreadable webhook"),
      },
    }),
  );
  const shown = decodeDeadLetterValue(letter, "p.");
  assert.ok("messageType" in shown, JSON.stringify(shown));
  assert.equal(shown.messageType, "application/json");
  assert.doesNotMatch(JSON.stringify(shown.value), new RegExp(phone));
  assert.match(JSON.stringify(shown.value), /"kind":"new"/);
  assert.match(notReplayable(letter) ?? "", /unreadable webhook/);

  const garbled = decodeDeadLetterValue({ ...letter, value: Buffer.from([0xff, 0xff, 0xff]) }, "p.");
  assert.ok("undecodable" in garbled);
  assert.equal(garbled.bytes, 3);
  const elsewhere = decodeDeadLetterValue(letter, "q.");
  assert.ok("undecodable" in elsewhere);
  assert.match(elsewhere.undecodable, /not a dead-letter topic of prefix "q\."/);
});

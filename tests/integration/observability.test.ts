import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CONVERSATIONS,
  type ConversationDoc,
  ConversationStore,
  conversationIndexes,
} from "@taituri/conversation-service/store";
import { type Infra, startInfra } from "@taituri/devenv";
import { ensureIndexes } from "@taituri/mongo";
import { type Db, MongoClient } from "mongodb";
import { parse } from "yaml";

/**
 * What deploy/ ships for operators: the Grafana dashboard and the Prometheus alert rules ask only
 * for metrics the code defines (a renamed metric fails here, not on a dark dashboard), and every
 * panel and alert is explained in docs/operations.md. Plus the one metric the alerts added: the
 * count of conversations stuck generating, on the real MongoDB-wire server.
 */
const root = new URL("../../", import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), "utf8");

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".test.ts"))
    .map((e) => join(e.parentPath, e.name))
    .filter((path) => !path.includes("node_modules") && !path.includes("/gen/"));
}

/** Every metric name a prom-client Counter, Gauge, Histogram or Summary in our code registers. */
function definedMetrics(): Set<string> {
  const names = new Set<string>();
  for (const file of [...sources("services"), ...sources("packages")]) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/new (?:Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*"([a-z_:]+)"/g))
      if (m[1]) names.add(m[1]);
  }
  return names;
}

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
]);

/** The metric names a PromQL expression reads (label matchers, groupings, ranges and functions removed). */
function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/"[^"]*"/g, " ");
  const names: string[] = [];
  for (const m of bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    const [, name, call] = m;
    if (!name || call || KEYWORDS.has(name) || /^\d/.test(name)) continue;
    names.push(name);
  }
  return names;
}

/** A histogram's series are its name plus _bucket, _sum and _count. */
const baseName = (series: string) => series.replace(/_(bucket|sum|count)$/, "");

interface Panel {
  title: string;
  targets: { expr: string }[];
}
const dashboard = JSON.parse(read("deploy/grafana/taituri-dashboard.json")) as { panels: Panel[] };
const rules = parse(read("deploy/prometheus/taituri-alerts.yaml")) as {
  groups: { rules: { alert: string; expr: string; annotations: { runbook: string } }[] }[];
};
const alerts = rules.groups.flatMap((g) => g.rules);
const operations = read("docs/operations.md");

describe("dashboard and alert rules", () => {
  test("the PromQL parser finds metric names and nothing else", () => {
    assert.deepEqual(
      metricsIn(
        'histogram_quantile(0.99, sum by (le, group) (rate(webhook_ack_seconds_bucket{outcome!~"a|b"}[5m]))) / on(shop) x_total > 0.5',
      ),
      ["webhook_ack_seconds_bucket", "x_total"],
    );
  });

  test("every query reads only metrics the code defines", () => {
    const defined = definedMetrics();
    assert.ok(
      defined.has("webhook_requests_total") && defined.has("kafka_consumer_lag"),
      [...defined].join(),
    );
    const queries = [
      ...dashboard.panels.flatMap((p) =>
        p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })),
      ),
      ...alerts.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr })),
    ];
    assert.ok(queries.length >= 20);
    for (const { where, expr } of queries) {
      const used = metricsIn(expr);
      assert.ok(used.length > 0, `${where} reads no metric: ${expr}`);
      for (const name of used)
        assert.ok(defined.has(baseName(name)), `${where} reads ${name}, which no code defines`);
    }
  });

  test("the dashboard and alerts cover what operators asked for, each explained in docs/operations.md", () => {
    assert.deepEqual(alerts.map((a) => a.alert).sort(), [
      "ConsumerLagHigh",
      "ConversationsStuckGenerating",
      "DeadLetterQueueGrowing",
      "OrderDeliveryStuck",
      "SpendOverBudget",
      "WebhookAckLatencyHigh",
      "WebhookErrorRate",
    ]);
    for (const alert of alerts) {
      assert.ok(operations.includes(`### ${alert.alert}`), `docs/operations.md explains ${alert.alert}`);
      assert.equal(alert.annotations.runbook, `docs/operations.md#${alert.alert.toLowerCase()}`);
    }
    assert.ok(dashboard.panels.length >= 12);
    for (const panel of dashboard.panels)
      assert.ok(
        operations.includes(`**${panel.title}**`),
        `docs/operations.md explains the panel "${panel.title}"`,
      );
  });
});

describe("conversation_stuck_generating", () => {
  let infra: Infra;
  let mongo: MongoClient;
  let db: Db;
  let store: ConversationStore;

  before(async () => {
    infra = await startInfra();
    mongo = new MongoClient(infra.mongo.url);
    db = mongo.db(`obs_${randomUUID().slice(0, 8)}`);
    await ensureIndexes(db, conversationIndexes);
    store = new ConversationStore(db);
  });

  after(async () => {
    await mongo?.close();
    await infra?.stop();
  });

  test("counts generating conversations whose deadline passed, and nothing else", async () => {
    const now = Date.now();
    const doc = (id: string, state: string, dueAt: number | null): ConversationDoc =>
      ({
        _id: id,
        conversation: { state },
        phoneNumberId: "PN",
        shopperId: id,
        version: 1,
        appliedEventIds: [],
        outbox: [],
        timers: [],
        nextTimerAt: dueAt === null ? null : new Date(dueAt),
        timersPending: dueAt !== null,
        createdAt: new Date(now),
        updatedAt: new Date(now),
      }) as unknown as ConversationDoc;
    await db
      .collection<ConversationDoc>(CONVERSATIONS)
      .insertMany([
        doc("overdue", "generating", now - 120_000),
        doc("also-overdue", "generating", now - 90_000),
        doc("on-time", "generating", now + 30_000),
        doc("other-state", "awaiting_payment", now - 120_000),
        doc("idle", "new", null),
      ]);
    assert.equal(await store.countStuckGenerating(new Date(now - 60_000)), 2);
    assert.equal(await store.countStuckGenerating(new Date(now - 100_000)), 1);
  });
});

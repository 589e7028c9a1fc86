/**
 * Operator CLI for the shop's side of orders: list them, show one with where it goes, mark one
 * shipped. It works on the payment service's order store directly and publishes the shipped event
 * with a Kafka producer of its own, from the payment service's settings. `npm run orders -- --help`.
 */
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ConfigError } from "@taituri/config";
import { createKafka, EventProducer, type Publisher, topicNames } from "@taituri/kafka";
import { createLogger } from "@taituri/logging";
import { connectMongo, ImageStore, type MongoHandle } from "@taituri/mongo";
import { contracts } from "@taituri/proto";
import { Registry } from "prom-client";
import { parse as parseYaml } from "yaml";
import type { PaymentProvider } from "./adapters/provider.ts";
import { type OrderDoc, PaymentStore } from "./adapters/store.ts";
import { view } from "./app.ts";
import { loadPaymentConfig, type PaymentConfig } from "./config.ts";
import { parsePriceCatalog } from "./domain/catalog.ts";
import { deliveryLines, trackingUrlProblem } from "./domain/delivery.ts";
import { ORDER_STATES, type OrderState } from "./domain/order.ts";
import { InvalidOrderNumber, parseOrderNumber } from "./domain/order-number.ts";
import { createMetrics } from "./metrics.ts";
import { createPayments, InvalidTrackingUrl } from "./payments.ts";

const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 500;

export const usage = `Usage: npm run orders -- <command> [options]

  list [--state <state>] [--limit <n>] [--json]
                            orders, newest first (default: the ${DEFAULT_LIMIT} newest, every state)
  show <number> [--json] [--save-image <file>]
                            one order: product, price, state, times, recipient, delivery; with
                            --save-image, the chosen design written to <file>
  mark-shipped <number> [--tracking <url>]
                            paid → shipped: the shopper is told in WhatsApp, with the tracking
                            URL (http or https) if given; repeating it changes nothing

  <number>    the order number in any form people type it (7KQ2-M9XD, 7kq2m9xd)
  <state>     ${ORDER_STATES.join(", ")}

Settings: the payment service's (MONGO_URL, MONGO_DB, KAFKA_BROKERS, KAFKA_TOPIC_PREFIX), whose
defaults are the servers \`npm start\` runs. The output holds the shopper's personal data (names,
addresses): it is for the shop.

Exit codes: 0 done, 1 other error, 2 bad usage, no such order, or an order not in a state the
command applies to, 5 MongoDB unreachable.`;

export const exitCodes = { ok: 0, error: 1, usage: 2, unreachable: 5 } as const;

/** A failure with the exit code it maps to and a message for a human. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

export type Command =
  | { name: "help" }
  | { name: "list"; state?: OrderState; limit: number; json: boolean }
  | { name: "show"; number: string; json: boolean; saveImage?: string }
  | { name: "mark-shipped"; number: string; tracking?: string };

const usageError = (message: string) => new CliError(exitCodes.usage, `${message}\n\n${usage}`);

/** The command line, checked: a CliError (usage) names what is wrong. */
export function parseCommand(argv: string[]): Command {
  let parsed: ReturnType<typeof parseArgv>;
  try {
    parsed = parseArgv(argv);
  } catch (error) {
    throw usageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) return { name: "help" };
  const [name, ...rest] = positionals;
  const allowed = (flags: string[]) => {
    const given = Object.keys(values).filter((flag) => values[flag as keyof typeof values] !== undefined);
    const wrong = given.filter((flag) => !flags.includes(flag));
    if (wrong.length > 0) throw usageError(`${name} does not take --${wrong.join(", --")}`);
  };
  switch (name) {
    case "list": {
      if (rest.length > 0) throw usageError("list takes no order number");
      allowed(["state", "limit", "json"]);
      const state = values.state;
      if (state !== undefined && !ORDER_STATES.includes(state as OrderState))
        throw usageError(`--state must be one of ${ORDER_STATES.join(", ")}`);
      const limit = values.limit === undefined ? DEFAULT_LIMIT : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
        throw usageError(`--limit must be a whole number from 1 to ${MAX_LIMIT}`);
      return { name, ...(state ? { state: state as OrderState } : {}), limit, json: values.json ?? false };
    }
    case "show":
      allowed(["json", "save-image"]);
      return {
        name,
        number: orderNumber(name, rest),
        json: values.json ?? false,
        ...(values["save-image"] ? { saveImage: values["save-image"] } : {}),
      };
    case "mark-shipped": {
      allowed(["tracking"]);
      const tracking = values.tracking?.trim();
      const problem = tracking ? trackingUrlProblem(tracking) : undefined;
      if (problem) throw new CliError(exitCodes.usage, `--tracking: ${problem}`);
      return { name, number: orderNumber(name, rest), ...(tracking ? { tracking } : {}) };
    }
    default:
      throw usageError(name ? `unknown command "${name}"` : "expected a command: list, show or mark-shipped");
  }
}

function parseArgv(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      state: { type: "string" },
      limit: { type: "string" },
      json: { type: "boolean" },
      "save-image": { type: "string" },
      tracking: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

function orderNumber(command: string, rest: string[]): string {
  if (rest.length !== 1) throw usageError(`${command} takes one order number`);
  try {
    return parseOrderNumber(rest[0] ?? "");
  } catch (error) {
    if (error instanceof InvalidOrderNumber) throw new CliError(exitCodes.usage, error.message);
    throw error;
  }
}

/** "2026-05-01 10:01" (UTC), or "-". */
function minute(at: Date | undefined): string {
  return at ? `${at.toISOString().slice(0, 16).replace("T", " ")}Z` : "-";
}

const price = (order: OrderDoc) => contracts.formatPrice(order.amount, order.currency, "en");

/** Where it goes, in a word: the country, "pickup", or "-" for an order from before deliveries. */
function destination(order: OrderDoc): string {
  if (!order.delivery) return "-";
  return order.delivery.method === "pickup" ? "pickup" : order.delivery.country;
}

/** `list`: one line per order. */
export function listTable(orders: OrderDoc[]): string {
  if (orders.length === 0) return "no orders\n";
  const rows = [
    ["NUMBER", "STATE", "PRODUCT", "PRICE", "PAID", "SHIPPED", "TO"],
    ...orders.map((o) => [
      o.number,
      o.state,
      o.productName,
      price(o),
      minute(o.paidAt),
      minute(o.shippedAt),
      destination(o),
    ]),
  ];
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return `${rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

/** `show`: everything the shop needs to send the order, and what happened to it. */
export function showText(order: OrderDoc): string {
  const lines: [string, string][] = [
    ["state", order.state],
    ["product", `${order.productName} (${order.productId}), shop ${order.shopId}`],
    ["price", price(order)],
    ["design", `${order.designId} (image ${order.imageId})`],
    ["recipient", order.recipient ?? "-"],
  ];
  const [first, ...more] = order.delivery ? deliveryLines(order.delivery) : ["-"];
  lines.push(["deliver to", first ?? "-"], ...more.map((line): [string, string] => ["", line]));
  lines.push(["created", minute(order.createdAt)]);
  if (order.paidAt) lines.push(["paid", minute(order.paidAt)]);
  if (order.shippedAt) lines.push(["shipped", minute(order.shippedAt)]);
  if (order.trackingUrl) lines.push(["tracking", order.trackingUrl]);
  if (order.cancelledAt)
    lines.push(["cancelled", `${minute(order.cancelledAt)} (${order.cancelReason ?? "?"})`]);
  if (order.failureReason) lines.push(["failure", order.failureReason]);
  if (order.refundReason)
    lines.push([
      "refund",
      `${order.refundReason}${order.refundedAt ? `, ${minute(order.refundedAt)}` : ", due"}`,
    ]);
  if (order.refundRefused) lines.push(["", `refused by the provider: ${order.refundRefused}`]);
  lines.push(["history", order.history.map((h) => `${h.state} ${minute(h.at)}`).join(", ")]);
  const width = Math.max(...lines.map(([label]) => label.length));
  return `order ${order.number}\n${lines.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`).join("\n")}\n`;
}

/** What mark-shipped did, for a human. */
export function shippedText(
  order: OrderDoc,
  outcome: "shipped" | "already_shipped" | { unpublished: string },
): string {
  const tracking = order.trackingUrl ? ` (tracking ${order.trackingUrl})` : "";
  if (outcome === "already_shipped")
    return `order ${order.number} was already shipped at ${minute(order.shippedAt)}${tracking}: nothing changed, the shopper is not told again\n`;
  const head = `order ${order.number} marked shipped${tracking}`;
  if (outcome === "shipped") return `${head}: the shopper is told in WhatsApp\n`;
  return `${head}.\nThe shipped event could not be published now (${outcome.unpublished}): it waits in the order's outbox, and the running payment service's sweeper publishes it (the shopper is told then).\n`;
}

/** The host of MONGO_URL, without credentials. */
function mongoHost(url: string): string {
  try {
    return new URL(url).host || "MONGO_URL";
  } catch {
    return "MONGO_URL";
  }
}

/** mark-shipped talks to no provider: should that change, this one says so instead of acting. */
function noProvider(name: PaymentProvider["name"]): PaymentProvider {
  const refuse = () => {
    throw new Error("the orders CLI does not talk to the payment provider");
  };
  return { name, createSession: refuse, expireSession: refuse, verifyWebhook: refuse, refund: refuse };
}

async function main(argv: string[]): Promise<number> {
  const command = parseCommand(argv);
  if (command.name === "help") {
    process.stdout.write(`${usage}\n`);
    return exitCodes.ok;
  }
  let config: PaymentConfig;
  try {
    config = loadPaymentConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(exitCodes.usage, error.message);
    throw error;
  }
  let mongo: MongoHandle;
  try {
    mongo = await connectMongo({ url: config.MONGO_URL, dbName: config.MONGO_DB, appName: "orders-cli" });
  } catch (error) {
    throw new CliError(
      exitCodes.unreachable,
      `MongoDB unreachable at ${mongoHost(config.MONGO_URL)}: ${(error as Error).message}`,
    );
  }
  try {
    const store = new PaymentStore(mongo.db);
    switch (command.name) {
      case "list": {
        const orders = await store.list({
          ...(command.state ? { state: command.state } : {}),
          limit: command.limit,
        });
        if (command.json) print(orders.map(view));
        else process.stdout.write(listTable(orders));
        return exitCodes.ok;
      }
      case "show": {
        const order = await found(store, command.number);
        if (command.saveImage) await saveImage(new ImageStore(mongo.db), order, command.saveImage);
        if (command.json) print(view(order));
        else process.stdout.write(showText(order));
        return exitCodes.ok;
      }
      case "mark-shipped":
        return await markShipped(config, store, command);
    }
  } finally {
    await mongo.close();
  }
}

async function found(store: PaymentStore, number: string): Promise<OrderDoc> {
  const order = await store.byNumber(number);
  if (!order) throw new CliError(exitCodes.usage, `no order ${number}`);
  return order;
}

async function saveImage(images: ImageStore, order: OrderDoc, file: string): Promise<void> {
  const image = await images.get(order.imageId);
  if (!image) throw new CliError(exitCodes.error, `order ${order.number}: its design's image is not stored`);
  await writeFile(file, image.bytes);
  process.stderr.write(`design of order ${order.number} written to ${file} (${image.contentType})\n`);
}

async function markShipped(
  config: PaymentConfig,
  store: PaymentStore,
  command: Extract<Command, { name: "mark-shipped" }>,
): Promise<number> {
  const before = await found(store, command.number);
  if (before.state === "shipped") {
    process.stdout.write(shippedText(before, "already_shipped"));
    return exitCodes.ok;
  }
  if (before.state !== "paid")
    throw new CliError(
      exitCodes.usage,
      `order ${command.number} is ${before.state}: only a paid order can be marked shipped`,
    );
  // The shipped event goes out at once on a producer of our own. Without Kafka the write still
  // stands: the event waits in the order's outbox for the payment service's sweeper.
  const logger = createLogger({ service: "orders-cli", level: "silent" });
  const producer = new EventProducer(
    createKafka({ brokers: config.KAFKA_BROKERS, clientId: "orders-cli", logger, security: config }),
  );
  let publisher: Publisher = producer;
  try {
    await producer.connect();
  } catch (error) {
    publisher = {
      send: async () => {
        throw error;
      },
    };
  }
  const payments = createPayments({
    store,
    provider: noProvider(config.PAYMENT_PROVIDER),
    publisher,
    topics: topicNames(config.KAFKA_TOPIC_PREFIX),
    catalog: parsePriceCatalog(parseYaml(await readFile(config.PAYMENT_CATALOG_FILE, "utf8"))),
    sessionTtlMs: config.PAYMENT_SESSION_TTL_MS,
    metrics: createMetrics(new Registry(), async () => ({})),
    logger,
  });
  try {
    const result = await payments.markShipped(command.number, command.tracking);
    if (result === "not_found") throw new CliError(exitCodes.usage, `no order ${command.number}`);
    if (result === "not_shippable") {
      const now = await found(store, command.number);
      throw new CliError(
        exitCodes.usage,
        `order ${command.number} is ${now.state}: only a paid order can be marked shipped`,
      );
    }
    process.stdout.write(shippedText(result, "shipped"));
    return exitCodes.ok;
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (error instanceof InvalidTrackingUrl) throw new CliError(exitCodes.usage, error.message);
    // Written but not published: the sweeper's to publish.
    const after = await store.byNumber(command.number);
    if (after?.state !== "shipped") throw error;
    process.stdout.write(shippedText(after, { unpublished: (error as Error).message }));
    return exitCodes.ok;
  } finally {
    await producer.disconnect().catch(() => {});
  }
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`orders: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      process.stderr.write(`orders: ${error instanceof Error ? (error.stack ?? error.message) : error}\n`);
      process.exitCode = exitCodes.error;
    }
  }
}

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Infra, startInfra } from "@taituri/devenv";
import { conversationAttributes, pseudonym } from "@taituri/telemetry";
import { eventually, type FakeGraphApi, runId, startFakeGraphApi } from "@taituri/testing/harness";
import { spanText, startCapture } from "./support/capture.ts";
import { ShopEndpoint } from "./support/shop.ts";
import { assertRefusesTampering, type ShopVerifier, shopVerifier } from "./support/shop-verifier.ts";
import { Shopper } from "./support/shopper.ts";
import type { Stack } from "./support/stack.ts";

/**
 * From greeting to shipped, and no phone number, name, address or message text in plaintext in
 * what the services export: one whole journey (hello → designs from the REAL generation service
 * admitted by the REAL limiter → the address step, with a voice note and a correction → a checkout
 * with the REAL payment service → paid → the signed order at the shop's endpoint → `npm run orders
 * -- mark-shipped` → the shopper told) through every service in this process, with the
 * OpenTelemetry SDK and its instrumentations on, every span kept in memory, every log line (debug
 * level, kafkajs's included) captured, and every service's /metrics scraped afterwards.
 */
const { exporter, processor, telemetry, logger, logLines } = startCapture("privacy-test");

const run = runId();
const SECRET = "privacy-secret";
// Distinctive enough that a match anywhere can only be a leak: a 13-digit number, a profile name, a
// first message and a recipient name no service could have made up.
const WA_ID = `4479${String(randomInt(1e8, 1e9))}`;
// And a business-scoped user id beside it, as Meta sends since April 2026: the conversation's key.
const USER_ID = `GB.${String(randomInt(1e9, 1e10))}${String(randomInt(1e9, 1e10))}`;
const PROFILE = `Xanthippe Q${run}`;
const FIRST_MESSAGE = `Quixotic marmalade ${run} for my aunt`;
const RECIPIENT = "Zenobia";
// Where the gift goes: a postcode typed wrong first (a valid shape), then corrected.
const ADDRESSEE = `Philippa Quonsett`;
const STREET = "17 Marmaduke Gardens";
const FLAT = "Flat 9Z";
const CITY = "Little Snoring";
const WRONG_POSTCODE = "KW17 2QX";
const POSTCODE = "KW17 2QZ";
const SHOP_SECRET = `shop-secret-${run}-0123456789abcdef0123456789`;
const TRACKING = `https://track.example/parcel/${run}`;
const secrets = [
  ADDRESSEE,
  "Quonsett",
  STREET,
  "Marmaduke",
  FLAT,
  CITY,
  "Snoring",
  WRONG_POSTCODE,
  POSTCODE,
  POSTCODE.replace(" ", ""),
  WA_ID,
  `+${WA_ID}`,
  USER_ID,
  USER_ID.slice(3),
  PROFILE,
  "Xanthippe",
  FIRST_MESSAGE,
  "Quixotic marmalade",
  RECIPIENT,
];

let infra: Infra;
let graph: FakeGraphApi;
let stack: Stack;
let shop: ShopEndpoint;
let verify: ShopVerifier;

before(async () => {
  // Imported only now, after the SDK has started, so the instrumentations see the services' libraries load.
  const { startStack } = await import("./support/stack.ts");
  infra = await startInfra();
  graph = await startFakeGraphApi();
  shop = await ShopEndpoint.start();
  verify = await shopVerifier();
  stack = await startStack({
    id: `privacy-${run}`,
    infra,
    graph,
    logger,
    secret: SECRET,
    generation: true,
    payment: true,
    conversation: { TIMER_POLL_MS: "200" },
    paymentSettings: { ORDERS_WEBHOOK_URL: shop.url, ORDERS_WEBHOOK_SECRET: SHOP_SECRET },
  });
});

after(async () => {
  await stack?.stop();
  await graph?.close();
  await shop?.close();
  await infra?.stop();
  await telemetry.shutdown();
});

function leaksIn(text: string): string[] {
  return secrets.filter((secret) => text.includes(secret));
}

describe("privacy of telemetry", { timeout: 5 * 60_000 }, () => {
  test("greeting to shipped, leaving no phone number, BSUID, name, address or message text in spans, logs or metrics", async () => {
    const shopper = new Shopper({
      waId: WA_ID,
      userId: USER_ID,
      phoneNumberId: "PNPRIV",
      webhook: () => stack.ingress.endpoints.webhook ?? "",
      secret: SECRET,
      graph,
      wamidPrefix: run,
      timeoutMs: 45_000,
      profileName: PROFILE,
    });
    const confirm = await shopper.toConfirmation("retro", { hello: FIRST_MESSAGE, recipient: RECIPIENT });
    assert.match(confirm?.text ?? "", new RegExp(RECIPIENT), "the bot did read the name");
    await shopper.tap(confirm?.ids[0] ?? "");
    await shopper.next();
    const shown = await shopper.next(4);
    await shopper.tap(shown[3]?.ids[0] ?? "");

    // Where the gift goes: the country from the list, the addressee, a voice note where the street
    // was expected (asked again, nothing moves), the street with a second line, the city, a postcode.
    const [countries] = await shopper.next();
    assert.equal(countries?.type, "list");
    await shopper.tap(countries?.ids.find((id) => id.endsWith(":GB")) ?? "");
    assert.match((await shopper.next())[0]?.text ?? "", /Who should the parcel be addressed to/);
    await shopper.say(ADDRESSEE);
    assert.match((await shopper.next())[0]?.text ?? "", /street and number/);
    await shopper.voice();
    const [textOnly, again] = await shopper.next(2);
    assert.match(textOnly?.text ?? "", /only read text/);
    assert.match(again?.text ?? "", /street and number/);
    await shopper.say(`${STREET}\n${FLAT}`);
    assert.match((await shopper.next())[0]?.text ?? "", /town or city/);
    await shopper.say(CITY);
    assert.match((await shopper.next())[0]?.text ?? "", /postcode/);
    await shopper.say(WRONG_POSTCODE);
    // The shopper sees the typo and corrects it: Change, the postcode, typed without its space.
    const [check] = await shopper.next();
    assert.match(check?.text ?? "", new RegExp(`${WRONG_POSTCODE} ${CITY}`));
    await shopper.tap(check?.ids.find((id) => id.endsWith(":change")) ?? "");
    const [fields] = await shopper.next();
    await shopper.tap(fields?.ids.find((id) => id.endsWith(":postcode")) ?? "");
    await shopper.next();
    await shopper.say(POSTCODE.toLowerCase().replace(" ", ""));
    const [checked] = await shopper.next();
    assert.equal(
      checked?.text,
      `Please check where the gift goes:\n\n${ADDRESSEE}\n${STREET}\n${FLAT}\n${POSTCODE} ${CITY}\nUnited Kingdom\n\nIs everything right?`,
    );
    await shopper.tap(checked?.ids.find((id) => id.endsWith(":ok")) ?? "");
    assert.match((await shopper.next())[0]?.text ?? "", /Preparing your checkout/);
    const [pay] = await shopper.next();
    assert.equal(pay?.type, "cta_url");
    const checkout = await (await fetch(pay?.url ?? "")).text();
    assert.match(checkout, /Delivering to/, "the checkout page shows where the gift goes");
    assert.match(checkout, new RegExp(POSTCODE));
    const paid = await fetch(`${pay?.url}/pay`, { method: "POST" });
    assert.equal(paid.status, 200);
    const [confirmation] = await shopper.next();
    const orderNumber = /order number is (\w{4}-\w{4})/.exec(confirmation?.text ?? "")?.[1] ?? "";
    assert.ok(orderNumber, confirmation?.text);

    // The shop's endpoint gets the order, signed, with what it needs to send the gift.
    const [received] = await eventually("the order at the shop's endpoint", () => {
      const acked = shop.acknowledged();
      return acked.length > 0 && acked;
    });
    assert.ok(received);
    const signature = String(received.headers["taituri-signature"]);
    assertRefusesTampering(verify, { body: received.raw, signature }, SHOP_SECRET);
    const order = (received.json.data as { order: Record<string, unknown> }).order;
    assert.equal(received.json.id, `order.paid:${orderNumber}`);
    assert.equal(order.number, orderNumber);
    assert.equal(order.recipient, RECIPIENT);
    assert.deepEqual(order.product, { id: "mug-11oz", name: "ceramic mug" });
    assert.deepEqual(order.price, { amount: 1990, currency: "EUR", formatted: "€19.90" });
    assert.deepEqual(order.delivery, {
      method: "address",
      address: { name: ADDRESSEE, line1: STREET, line2: FLAT, city: CITY, postcode: POSTCODE, country: "GB" },
    });
    const imageUrl = String((order.design as { imageUrl: string }).imageUrl);
    const image = await fetch(imageUrl);
    assert.equal(image.status, 200);
    assert.match(image.headers.get("content-type") ?? "", /^image\//);
    // The link's signature is a key to the image: it must not end up in a span or a log line.
    secrets.push(new URL(imageUrl).searchParams.get("signature") ?? "(no signature)");

    // The shop marks it shipped from the command line, and the shopper is told with the link.
    const cli = spawnSync(
      process.execPath,
      ["services/payment/src/cli.ts", "mark-shipped", orderNumber, "--tracking", TRACKING],
      { cwd: new URL("../..", import.meta.url), env: { ...process.env, ...stack.env }, encoding: "utf8" },
    );
    assert.equal(cli.status, 0, `${cli.stdout}\n${cli.stderr}`);
    assert.equal(
      (await shopper.next())[0]?.text,
      `Your gift (order ${orderNumber}) is on its way! 📦\nTrack it here: ${TRACKING}`,
    );

    await processor.forceFlush();
    const spans = exporter.getFinishedSpans();
    // The capture works: the journey made spans in every service and logged, with pseudonyms.
    const scopes = new Set(spans.map((s) => s.instrumentationScope.name));
    for (const scope of ["@taituri/ingress", "@taituri/kafka", "@taituri/generation", "@taituri/payment"])
      assert.ok(scopes.has(scope), `spans from ${scope} (got ${[...scopes].join(", ")})`);
    const shopperTag = pseudonym(USER_ID);
    assert.ok(
      spans.some((s) => s.attributes["shopper.id"] === shopperTag),
      "the shopper's spans are findable by their pseudonym",
    );
    assert.ok(
      spans.some(
        (s) =>
          s.attributes["conversation.id"] === conversationAttributes(`PNPRIV:${USER_ID}`)["conversation.id"],
      ),
    );
    assert.ok(logLines.length > 5, `log lines captured (${logLines.length})`);

    for (const span of spans) {
      const text = spanText(span);
      assert.deepEqual(leaksIn(text), [], `span "${span.name}" leaks: ${text}`);
    }
    for (const line of logLines) assert.deepEqual(leaksIn(line), [], `log line leaks: ${line}`);

    for (const service of stack.services) {
      const ops = service.endpoints.ops;
      assert.ok(ops, "every service serves /metrics");
      const metrics = await (await fetch(`${ops}/metrics`)).text();
      assert.match(metrics, /# TYPE/);
      assert.deepEqual(leaksIn(metrics), [], `${ops}/metrics leaks`);
    }
  });
});

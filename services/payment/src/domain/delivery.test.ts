import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { payment } from "@taituri/proto";
import { parsePriceCatalog } from "./catalog.ts";
import { deliveryLines, deliveryMessage, readDelivery, trackingUrlProblem } from "./delivery.ts";

const [shop] = parsePriceCatalog({
  shops: [
    {
      id: "demo-shop",
      language: "es",
      currency: "EUR",
      product: { id: "mug", name: { es: "taza" }, price: 1990 },
      delivery: {
        countries: ["ES", "PT"],
        pickup: [
          { id: "sol", name: { en: "Sol kiosk", es: "Quiosco Sol" }, address: "Puerta del Sol 1, Madrid" },
        ],
      },
    },
  ],
}).shops;
if (!shop) throw new Error("no shop");

const address: payment.PostalAddress = {
  name: "Ana García",
  line1: "Calle Mayor 5",
  line2: "",
  city: "Madrid",
  postcode: "28013",
  country: "ES",
};
const posted = (over: Partial<payment.PostalAddress> = {}) => ({
  recipient: "Ana",
  delivery: { method: { $case: "address" as const, value: { ...address, ...over } } },
});
const pickup = (locationId: string, name = "Luis") => ({
  recipient: "Ana",
  delivery: { method: { $case: "pickup" as const, value: { locationId, name } } },
});

describe("a request's delivery", () => {
  test("a complete address in one of the shop's countries is kept, trimmed, without an empty line2", () => {
    assert.deepEqual(readDelivery(shop, posted({ city: " Madrid " })), {
      ok: true,
      recipient: "Ana",
      delivery: {
        method: "address",
        name: "Ana García",
        line1: "Calle Mayor 5",
        city: "Madrid",
        postcode: "28013",
        country: "ES",
      },
    });
  });

  test("a missing line, a country the shop does not serve or a bad code is refused, naming no value", () => {
    for (const field of ["name", "line1", "city", "postcode", "country"] as const)
      assert.deepEqual(readDelivery(shop, posted({ [field]: "  " })), {
        ok: false,
        reason: `delivery address without ${field}`,
      });
    assert.deepEqual(readDelivery(shop, posted({ country: "FR" })), {
      ok: false,
      reason: "shop demo-shop does not deliver to FR (only ES, PT)",
    });
    assert.equal(readDelivery(shop, posted({ country: "es" })).ok, false);
    assert.equal(readDelivery(shop, posted({ country: "ESP" })).ok, false);
  });

  test("a pickup point of the shop's, with the point as the catalog describes it in the shop's language", () => {
    assert.deepEqual(readDelivery(shop, pickup("sol")), {
      ok: true,
      recipient: "Ana",
      delivery: {
        method: "pickup",
        locationId: "sol",
        name: "Luis",
        location: { name: "Quiosco Sol", address: "Puerta del Sol 1, Madrid" },
      },
    });
    assert.deepEqual(readDelivery(shop, pickup("moon")), {
      ok: false,
      reason: 'shop demo-shop has no pickup point "moon"',
    });
    assert.equal(readDelivery(shop, pickup("sol", "")).ok, false);
  });

  test("no delivery, or no recipient, is refused", () => {
    assert.deepEqual(readDelivery(shop, { recipient: "Ana", delivery: undefined }), {
      ok: false,
      reason: "no delivery",
    });
    assert.deepEqual(readDelivery(shop, { recipient: "Ana", delivery: { method: undefined } }), {
      ok: false,
      reason: "no delivery",
    });
    assert.deepEqual(readDelivery(shop, { ...posted(), recipient: " " }), {
      ok: false,
      reason: "no recipient",
    });
  });

  test("the stored delivery goes back into the contract's shape, and reads as lines", () => {
    const read = readDelivery(shop, posted({ line2: "3º B" }));
    assert.ok(read.ok);
    assert.deepEqual(deliveryMessage(read.delivery), {
      method: { $case: "address", value: { ...address, line2: "3º B" } },
    });
    assert.deepEqual(deliveryLines(read.delivery), [
      "Ana García",
      "Calle Mayor 5",
      "3º B",
      "28013 Madrid",
      "ES",
    ]);
    const collected = readDelivery(shop, pickup("sol"));
    assert.ok(collected.ok);
    assert.deepEqual(deliveryMessage(collected.delivery), {
      method: { $case: "pickup", value: { locationId: "sol", name: "Luis" } },
    });
    assert.deepEqual(deliveryLines(collected.delivery), [
      "pickup at Quiosco Sol",
      "Puerta del Sol 1, Madrid",
      "collected by Luis",
    ]);
  });
});

describe("a tracking URL", () => {
  test("http(s) and at most 2000 characters", () => {
    assert.equal(trackingUrlProblem("https://track.example/p/123"), undefined);
    assert.equal(trackingUrlProblem("http://track.example/p/123"), undefined);
    assert.equal(trackingUrlProblem(`https://t.example/${"x".repeat(1982)}`), undefined);
    assert.equal(
      trackingUrlProblem(`https://t.example/${"x".repeat(1983)}`),
      "tracking URL longer than 2000 characters",
    );
    assert.equal(trackingUrlProblem("javascript:alert(1)"), "tracking URL must be http or https");
    assert.equal(trackingUrlProblem("track.example/p/123"), "tracking URL is not a URL");
  });
});

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { loadPaymentConfig } from "../config.ts";
import { checkPrice, parsePriceCatalog } from "./catalog.ts";

const shop = {
  id: "s",
  language: "en",
  currency: "EUR",
  product: { id: "mug", name: { en: "mug" }, price: 1990 },
  delivery: { countries: ["ES", "PT"] },
};
const catalog = parsePriceCatalog({ shops: [shop] });
const q = { shopId: "s", productId: "mug", amount: 1990, currency: "EUR" };

describe("the price check", () => {
  test("the catalog's price and currency pass", () => {
    const answer = checkPrice(catalog, q);
    assert.equal(answer.ok, true);
    assert.equal(answer.ok && answer.productName, "mug");
  });

  test("another amount, currency, product or shop is refused, naming the difference", () => {
    assert.deepEqual(checkPrice(catalog, { ...q, amount: 1 }), {
      ok: false,
      reason: "amount 1 EUR differs from the catalog's 1990 EUR",
    });
    assert.equal(checkPrice(catalog, { ...q, currency: "USD" }).ok, false);
    assert.equal(checkPrice(catalog, { ...q, productId: "tee" }).ok, false);
    assert.equal(checkPrice(catalog, { ...q, shopId: "other" }).ok, false);
  });

  test("an invalid catalog fails to load", () => {
    assert.throws(() => parsePriceCatalog({ shops: [] }));
    const { delivery: _, ...undelivered } = shop;
    assert.throws(() => parsePriceCatalog({ shops: [undelivered] }), /delivery/);
    assert.throws(() => parsePriceCatalog({ shops: [{ ...shop, delivery: { countries: [] } }] }));
    assert.throws(() => parsePriceCatalog({ shops: [{ ...shop, delivery: { countries: ["es"] } }] }));
    const point = { id: "p1", name: { en: "Kiosk" }, address: "Calle Mayor 1, Madrid" };
    assert.throws(
      () =>
        parsePriceCatalog({ shops: [{ ...shop, delivery: { countries: ["ES"], pickup: [point, point] } }] }),
      /pickup ids repeat/,
    );
    assert.throws(() => parsePriceCatalog({ shops: [{ ...shop, fulfilment: { url: "not a url" } }] }));
    assert.throws(() =>
      parsePriceCatalog({ shops: [{ ...shop, fulfilment: { url: "ftp://shop.example/" } }] }),
    );
    assert.throws(() =>
      parsePriceCatalog({
        shops: [{ id: "s", language: "en", currency: "eur", product: { id: "m", name: {}, price: 10 } }],
      }),
    );
    assert.throws(() =>
      parsePriceCatalog({
        shops: [{ id: "s", language: "en", currency: "EUR", product: { id: "m", name: {}, price: 19.9 } }],
      }),
    );
  });

  test("a shop's delivery countries, pickup points and fulfilment endpoint are read", () => {
    const read = parsePriceCatalog({
      shops: [
        {
          ...shop,
          delivery: {
            countries: ["ES"],
            pickup: [{ id: "p1", name: { en: "Kiosk", es: "Quiosco" }, address: "Calle Mayor 1, Madrid" }],
          },
          fulfilment: { url: "https://shop.example/orders" },
        },
      ],
    });
    assert.deepEqual(read.shops[0]?.delivery.pickup?.[0]?.name, { en: "Kiosk", es: "Quiosco" });
    assert.equal(read.shops[0]?.fulfilment?.url, "https://shop.example/orders");
  });

  test("the default catalog file (the conversation's) is valid for payments", async () => {
    const file = loadPaymentConfig({}).PAYMENT_CATALOG_FILE;
    const loaded = parsePriceCatalog(parse(await readFile(file, "utf8")));
    assert.ok(loaded.shops.length > 0);
  });
});

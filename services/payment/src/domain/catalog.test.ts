import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { loadPaymentConfig } from "../config.ts";
import { checkPrice, parsePriceCatalog } from "./catalog.ts";

const catalog = parsePriceCatalog({
  shops: [
    { id: "s", language: "en", currency: "EUR", product: { id: "mug", name: { en: "mug" }, price: 1990 } },
  ],
});
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

  test("the default catalog file (the conversation's) is valid for payments", async () => {
    const file = loadPaymentConfig({}).PAYMENT_CATALOG_FILE;
    const loaded = parsePriceCatalog(parse(await readFile(file, "utf8")));
    assert.ok(loaded.shops.length > 0);
  });
});

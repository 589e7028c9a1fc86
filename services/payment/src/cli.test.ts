import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { newOrderDoc, type OrderDoc } from "./adapters/store.ts";
import { CliError, exitCodes, listTable, parseCommand, shippedText, showText } from "./cli.ts";

/** The CLI's arguments and output; on real servers it is run by tests/integration. */
const usageError = (pattern: RegExp) => (e: unknown) =>
  e instanceof CliError && e.exitCode === exitCodes.usage && pattern.test(e.message);

describe("the orders CLI's arguments", () => {
  test("list: every state and 20 by default, or one state and a limit", () => {
    assert.deepEqual(parseCommand(["list"]), { name: "list", limit: 20, json: false });
    assert.deepEqual(parseCommand(["list", "--state", "paid", "--limit", "5", "--json"]), {
      name: "list",
      state: "paid",
      limit: 5,
      json: true,
    });
    assert.throws(
      () => parseCommand(["list", "--state", "sent"]),
      usageError(/--state must be one of created/),
    );
    for (const limit of ["0", "501", "2.5", "many"])
      assert.throws(() => parseCommand(["list", "--limit", limit]), usageError(/--limit must be/));
    assert.throws(
      () => parseCommand(["list", "--tracking", "https://t.example"]),
      usageError(/does not take --tracking/),
    );
  });

  test("show and mark-shipped: one order number, read as people type it", () => {
    assert.deepEqual(parseCommand(["show", "7kq2m9xd"]), { name: "show", number: "7KQ2-M9XD", json: false });
    assert.deepEqual(parseCommand(["show", "7KQ2-M9XD", "--json", "--save-image", "d.png"]), {
      name: "show",
      number: "7KQ2-M9XD",
      json: true,
      saveImage: "d.png",
    });
    assert.deepEqual(parseCommand(["mark-shipped", "7KQ2-M9XD", "--tracking", "https://t.example/1"]), {
      name: "mark-shipped",
      number: "7KQ2-M9XD",
      tracking: "https://t.example/1",
    });
    assert.deepEqual(parseCommand(["mark-shipped", "7KQ2-M9XD"]), {
      name: "mark-shipped",
      number: "7KQ2-M9XD",
    });
    assert.throws(() => parseCommand(["show"]), usageError(/show takes one order number/));
    assert.throws(() => parseCommand(["show", "A", "B"]), usageError(/one order number/));
    assert.throws(
      () => parseCommand(["show", "7KQ2-M9XU"]),
      usageError(/"U" is not a Crockford base32 symbol/),
    );
    assert.throws(
      () => parseCommand(["mark-shipped", "7KQ2-M9XD", "--json"]),
      usageError(/does not take --json/),
    );
  });

  test("a tracking URL that cannot go to a shopper is a usage error", () => {
    assert.throws(
      () => parseCommand(["mark-shipped", "7KQ2-M9XD", "--tracking", "ftp://t.example/1"]),
      usageError(/--tracking: tracking URL must be http or https/),
    );
    assert.throws(
      () =>
        parseCommand(["mark-shipped", "7KQ2-M9XD", "--tracking", `https://t.example/${"x".repeat(2000)}`]),
      usageError(/longer than 2000/),
    );
  });

  test("no command, an unknown one or an unknown flag: usage; --help asks for it", () => {
    assert.throws(() => parseCommand([]), usageError(/expected a command: list, show or mark-shipped/));
    assert.throws(() => parseCommand(["ship"]), usageError(/unknown command "ship"/));
    assert.throws(() => parseCommand(["list", "--all"]), usageError(/Unknown option '--all'/));
    assert.deepEqual(parseCommand(["--help"]), { name: "help" });
    assert.deepEqual(parseCommand(["list", "-h"]), { name: "help" });
  });
});

function order(over: Partial<OrderDoc> = {}): OrderDoc {
  const created = new Date("2026-05-01T10:00:00Z");
  return {
    ...newOrderDoc(
      {
        _id: "PNX:15550001234/o1",
        conversationId: "PNX:15550001234",
        shopId: "demo-shop",
        productId: "mug-11oz",
        productName: "ceramic mug",
        designId: "d2",
        imageId: "img-1",
        amount: 1990,
        currency: "EUR",
        recipient: "Ana",
        delivery: {
          method: "address",
          name: "Ana García",
          line1: "Calle Mayor 5",
          line2: "3º B",
          city: "Madrid",
          postcode: "28013",
          country: "ES",
        },
        provider: "local",
      },
      "7KQ2-M9XD",
      created,
    ),
    ...over,
  };
}

describe("the orders CLI's output", () => {
  test("list: a table with the number, state, product, price, times and where it goes", () => {
    const paid = order({ state: "paid", paidAt: new Date("2026-05-01T10:05:00Z") });
    const collected = order({
      number: "AAAA-BBBB",
      state: "shipped",
      paidAt: new Date("2026-05-01T10:05:00Z"),
      shippedAt: new Date("2026-05-02T09:00:00Z"),
      delivery: {
        method: "pickup",
        locationId: "sol",
        name: "Luis",
        location: { name: "Quiosco Sol", address: "Puerta del Sol 1" },
      },
    });
    assert.equal(
      listTable([paid, collected]),
      [
        "NUMBER     STATE    PRODUCT      PRICE   PAID               SHIPPED            TO",
        "7KQ2-M9XD  paid     ceramic mug  €19.90  2026-05-01 10:05Z  -                  ES",
        "AAAA-BBBB  shipped  ceramic mug  €19.90  2026-05-01 10:05Z  2026-05-02 09:00Z  pickup",
        "",
      ].join("\n"),
    );
    assert.equal(listTable([]), "no orders\n");
  });

  test("show: everything the shop needs to send it, the address line by line", () => {
    const text = showText(
      order({
        state: "shipped",
        paidAt: new Date("2026-05-01T10:05:00Z"),
        shippedAt: new Date("2026-05-02T09:00:00Z"),
        trackingUrl: "https://t.example/1",
      }),
    );
    assert.equal(
      text,
      [
        "order 7KQ2-M9XD",
        "  state       shipped",
        "  product     ceramic mug (mug-11oz), shop demo-shop",
        "  price       €19.90",
        "  design      d2 (image img-1)",
        "  recipient   Ana",
        "  deliver to  Ana García",
        "              Calle Mayor 5",
        "              3º B",
        "              28013 Madrid",
        "              ES",
        "  created     2026-05-01 10:00Z",
        "  paid        2026-05-01 10:05Z",
        "  shipped     2026-05-02 09:00Z",
        "  tracking    https://t.example/1",
        "  history     created 2026-05-01 10:00Z",
        "",
      ].join("\n"),
    );
  });

  test("mark-shipped says whether the shopper is told now, later, or not again", () => {
    const shipped = order({ state: "shipped", shippedAt: new Date("2026-05-02T09:00:00Z") });
    assert.equal(
      shippedText(shipped, "shipped"),
      "order 7KQ2-M9XD marked shipped: the shopper is told in WhatsApp\n",
    );
    assert.match(
      shippedText(shipped, "already_shipped"),
      /already shipped at 2026-05-02 09:00Z: nothing changed/,
    );
    assert.match(
      shippedText({ ...shipped, trackingUrl: "https://t.example/1" }, { unpublished: "Connection timeout" }),
      /marked shipped \(tracking https:\/\/t\.example\/1\)\.\nThe shipped event could not be published now \(Connection timeout\): .*sweeper publishes it/,
    );
  });
});

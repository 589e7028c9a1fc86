import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fulfilment } from "@taituri/proto";
import { type BodyShop, orderPaidBody, orderPaidProblem, type PaidOrder } from "./body.ts";

const paidAt = new Date("2026-03-01T10:20:30.000Z");
const order = (over: Partial<PaidOrder> = {}): PaidOrder => ({
  eventId: "order.paid:7KQ2-M9XD",
  orderNumber: "7KQ2-M9XD",
  shopId: "demo-shop",
  productId: "mug-11oz",
  productName: "taza de cerámica",
  amount: 1990,
  currency: "EUR",
  imageId: "PN:34600000001/o1/image",
  recipient: "Lucía",
  delivery: {
    method: {
      $case: "address",
      value: {
        name: "Ana Pérez",
        line1: "Calle Mayor 1",
        line2: "",
        city: "Madrid",
        postcode: "28013",
        country: "ES",
      },
    },
  },
  paidAt,
  ...over,
});
const shop: BodyShop = {
  language: "es",
  delivery: {
    pickup: [
      {
        id: "centro",
        name: { es: "Tienda Centro", en: "Centre shop" },
        address: "Calle Mayor 1, 28013 Madrid",
      },
    ],
  },
};
const design = {
  url: "https://pay.example/orders/7KQ2-M9XD/design?expires=1&signature=ab",
  expiresAt: new Date("2026-03-08T10:20:31.000Z"),
};

describe("the body a shop receives", () => {
  test("an address order: every field, in the documented shape", () => {
    assert.deepEqual(orderPaidBody(order(), shop, design), {
      id: "order.paid:7KQ2-M9XD",
      type: "order.paid",
      created: Math.floor(paidAt.getTime() / 1000),
      data: {
        order: {
          number: "7KQ2-M9XD",
          shop: "demo-shop",
          product: { id: "mug-11oz", name: "taza de cerámica" },
          price: { amount: 1990, currency: "EUR", formatted: "19,90\u00a0€" },
          design: { imageUrl: design.url, imageUrlExpiresAt: "2026-03-08T10:20:31.000Z" },
          recipient: "Lucía",
          delivery: {
            method: "address",
            address: {
              name: "Ana Pérez",
              line1: "Calle Mayor 1",
              city: "Madrid",
              postcode: "28013",
              country: "ES",
            },
          },
          paidAt: "2026-03-01T10:20:30.000Z",
        },
      },
    });
  });

  test("line2 is there when given", () => {
    const withLine2 = order({
      delivery: {
        method: {
          $case: "address",
          value: { name: "A", line1: "L1", line2: "3º B", city: "C", postcode: "P", country: "ES" },
        },
      },
    });
    const delivery = orderPaidBody(withLine2, shop, design).data.order.delivery;
    assert.equal(delivery?.method === "address" && delivery.address.line2, "3º B");
  });

  test("a pickup order names the point as the catalog does, in the shop's language, and who collects it", () => {
    const pickup = order({
      delivery: { method: { $case: "pickup", value: { locationId: "centro", name: "Ana" } } },
    });
    assert.deepEqual(orderPaidBody(pickup, shop, design).data.order.delivery, {
      method: "pickup",
      location: { id: "centro", name: "Tienda Centro", address: "Calle Mayor 1, 28013 Madrid" },
      name: "Ana",
    });
    // A point that has left the catalog since: its id still says where.
    const gone = order({
      delivery: { method: { $case: "pickup", value: { locationId: "old", name: "Ana" } } },
    });
    assert.deepEqual(orderPaidBody(gone, shop, design).data.order.delivery, {
      method: "pickup",
      location: { id: "old" },
      name: "Ana",
    });
  });

  test("an order without delivery (placed before it was asked) says so with null", () => {
    assert.equal(orderPaidBody(order({ delivery: undefined }), shop, design).data.order.delivery, null);
  });

  test("the id and everything but the design link are the same on every attempt", () => {
    const later = { url: `${design.url}x`, expiresAt: new Date(design.expiresAt.getTime() + 60_000) };
    const first = orderPaidBody(order(), shop, design);
    const second = orderPaidBody(order(), shop, later);
    assert.equal(first.id, second.id);
    assert.deepEqual({ ...first.data.order, design: null }, { ...second.data.order, design: null });
  });

  test("never the order id, conversation id or a phone number", () => {
    const text = JSON.stringify(orderPaidBody(order(), shop, design));
    assert.doesNotMatch(text, /PN:|34600000001|conversation|orderId/);
  });

  test("a record without event id, number, shop or payment time is refused", () => {
    const base = fulfilment.OrderPaid.fromPartial(order());
    assert.equal(orderPaidProblem(base), undefined);
    assert.match(orderPaidProblem({ ...base, eventId: "" }) ?? "", /without eventId/);
    assert.match(orderPaidProblem({ ...base, orderNumber: "" }) ?? "", /without orderNumber/);
    assert.match(orderPaidProblem({ ...base, shopId: "" }) ?? "", /without shopId/);
    assert.match(orderPaidProblem({ ...base, paidAt: undefined }) ?? "", /without paid_at/);
  });
});

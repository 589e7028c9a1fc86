import { readOrderNumber } from "./order-number.ts";

/**
 * The shapes of the ids this service takes from outside (a provider's events, URLs), checked before
 * anything is looked up by them: a value of another type or shape (an object such as
 * `{"$gt": ""}` from a JSON body, a megabyte of text) never reaches a query. Each is a string of
 * bounded length over a small alphabet.
 */

/** A provider checkout session: Stripe's `cs_test_…`/`cs_live_…`, the local provider's `lcs_…`. */
const SESSION_ID = /^l?cs_[A-Za-z0-9_-]{1,250}$/;
/** A local checkout session: `lcs_` and 32 base64url characters (24 random bytes). */
const LOCAL_SESSION_ID = /^lcs_[A-Za-z0-9_-]{32}$/;
/** A provider event: Stripe's `evt_…`, the local provider's `evt_local_…`. */
const EVENT_ID = /^evt_[A-Za-z0-9_-]{1,250}$/;
/** A payment reference: Stripe's PaymentIntent `pi_…`, the local provider's `lpi_…`. */
const PAYMENT_REF = /^l?pi_[A-Za-z0-9_-]{1,250}$/;
/**
 * An order id, as the internal API takes it: `<conversation id>/o<n>`, the conversation id being
 * `<phone number id>:<phone number or BSUID>` (e.g. `PNX:US.13491208655302741918/o2`).
 */
const ORDER_ID = /^[A-Za-z0-9._:+/-]{1,256}$/;
/** The longest text read as an order number ("7KQ2-M9XD" as people type it, hyphens anywhere). */
const ORDER_NUMBER_TEXT = 32;

const matching = (shape: RegExp) => (value: unknown) =>
  typeof value === "string" && shape.test(value) ? value : undefined;

export const readSessionId = matching(SESSION_ID);
export const readLocalSessionId = matching(LOCAL_SESSION_ID);
export const readEventId = matching(EVENT_ID);
export const readPaymentRef = matching(PAYMENT_REF);
export const readOrderId = matching(ORDER_ID);

/** An order number in any form people type it, canonical; undefined for anything else. */
export function readOrderNumberText(value: unknown): string | undefined {
  return typeof value === "string" && value.length <= ORDER_NUMBER_TEXT ? readOrderNumber(value) : undefined;
}

/** Whether `value` is an order number in its canonical form ("7KQ2-M9XD"), as it is sent out. */
export function isOrderNumber(value: unknown): value is string {
  return readOrderNumberText(value) === value;
}

import { randomBytes } from "node:crypto";

/**
 * Order numbers for people: 8 characters of Crockford base32 from 40 random bits, shown as
 * `XXXX-XXXX` (e.g. "7KQ2-M9XD"). Unguessable (a trillion of them, drawn at random, so one number
 * says nothing about the next), short enough to read over the phone, and free of the letters that
 * look like digits. They are what the shopper, the shop and the provider see; the order id, which
 * holds the shopper's phone number or BSUID, stays inside.
 *
 * The formatted form is the canonical one: stored on the order, carried by every PaymentEvent, sent
 * to the provider. `parseOrderNumber` reads what people type back into it.
 */
export const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** Random bits in a number: 8 symbols of 5 bits. */
const BYTES = 5;
const SYMBOLS = 8;

/** A number typed or pasted wrongly, with what is wrong in the message. */
export class InvalidOrderNumber extends Error {
  override readonly name = "InvalidOrderNumber";
}

/** A new order number from 40 random bits (`random` is for tests). */
export function generateOrderNumber(random: (size: number) => Uint8Array = randomBytes): string {
  const bytes = random(BYTES);
  if (bytes.length !== BYTES) throw new Error(`an order number needs ${BYTES} random bytes`);
  let bits = 0n;
  for (const byte of bytes) bits = (bits << 8n) | BigInt(byte);
  let symbols = "";
  for (let i = SYMBOLS - 1; i >= 0; i--) symbols += ALPHABET[Number((bits >> BigInt(i * 5)) & 31n)];
  return formatOrderNumber(symbols);
}

/** 8 symbols (already canonical) as people read them: `XXXX-XXXX`. */
export function formatOrderNumber(symbols: string): string {
  return `${symbols.slice(0, 4)}-${symbols.slice(4)}`;
}

/**
 * The canonical number in `text`, read as Crockford says: case does not matter, I and L are 1, O
 * is 0, hyphens are ignored. Anything else (U, other characters, not 8 symbols) is refused.
 */
export function parseOrderNumber(text: string): string {
  let symbols = "";
  for (const char of text.toUpperCase()) {
    if (char === "-") continue;
    const read = char === "I" || char === "L" ? "1" : char === "O" ? "0" : char;
    if (!ALPHABET.includes(read))
      throw new InvalidOrderNumber(
        `order number ${JSON.stringify(text)}: ${JSON.stringify(char)} is not a Crockford base32 symbol`,
      );
    symbols += read;
  }
  if (symbols.length !== SYMBOLS)
    throw new InvalidOrderNumber(
      `order number ${JSON.stringify(text)}: ${symbols.length} symbols, expected ${SYMBOLS} (XXXX-XXXX)`,
    );
  return formatOrderNumber(symbols);
}

/** The canonical number, or undefined when `text` is not one (e.g. another system's reference). */
export function readOrderNumber(text: string | null | undefined): string | undefined {
  if (!text) return undefined;
  try {
    return parseOrderNumber(text);
  } catch (error) {
    if (error instanceof InvalidOrderNumber) return undefined;
    throw error;
  }
}

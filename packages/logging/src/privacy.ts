import { createHmac, createSecretKey, type KeyObject } from "node:crypto";

/**
 * Pseudonyms for what identifies a shopper in telemetry. A shopper is named by their phone number
 * (wa_id) or their business-scoped user id (BSUID, "US.13491208655302741918"), and one of them is
 * inside conversation, round and order ids ("<phone_number_id>:<BSUID>/j1/r2"); none of it may
 * reach a log line, a span or a metric label in plaintext. A keyed hash (HMAC-SHA256)
 * stays the same for one id everywhere, so an operator can still follow one shopper: compute the
 * pseudonym of their number (`node scripts/pseudonym.ts <wa_id>`) and search for it.
 */

// Only for local runs and tests: with a known key anyone can hash every phone number and reverse
// the pseudonyms, so deployments set PSEUDONYM_KEY to a secret.
export const DEV_PSEUDONYM_KEY = "taituri-dev-pseudonym-key";

// A KeyObject: given the key's bytes, every HMAC would import them again.
let key: KeyObject = createSecretKey(Buffer.from(DEV_PSEUDONYM_KEY, "utf8"));

/**
 * The pseudonyms computed lately, by id. A traced message names its shopper in several spans and
 * log lines, and each is redacted on its own: at 100 % sampling the HMACs were ~15 µs of ingress's
 * CPU per webhook (bench/README.md, "Issue #27"). The ids are in this process's memory anyway while
 * it handles them; the map is bounded, and emptied when the key changes.
 */
const recent = new Map<string, string>();
const RECENT_MAX = 10_000;

/** Sets the process's pseudonym key (runService does it from PSEUDONYM_KEY). */
export function configurePseudonyms(secret: string): void {
  if (secret.length === 0) throw new Error("the pseudonym key must not be empty");
  key = createSecretKey(Buffer.from(secret, "utf8"));
  recent.clear();
}

/**
 * "p" and 16 hex digits (64 bits of HMAC-SHA256 under the configured key). The leading letter
 * keeps a pseudonym from ever looking like a phone number to redact(), so redacting twice is
 * harmless.
 */
export function pseudonym(id: string): string {
  const known = recent.get(id);
  if (known !== undefined) return known;
  const computed = `p${createHmac("sha256", key).update(id).digest("hex").slice(0, 16)}`;
  // The oldest first out (a Map keeps insertion order): ids come back within one message's spans.
  if (recent.size >= RECENT_MAX) recent.delete(recent.keys().next().value as string);
  recent.set(id, computed);
  return computed;
}

// A BSUID: an ISO 3166 country code, a dot, maybe "ENT." (a parent BSUID), and up to 128
// alphanumerics (Meta's format), standing on its own. At least 8 of them, so that a short
// "XX.word" in prose is left alone; real ones carry about 20 digits.
const BSUID = String.raw`[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{8,128}(?![\p{L}\p{N}])`;
const BSUID_START = String.raw`(?<![\p{L}\p{N}.])`;

// A phone number as WhatsApp writes it (E.164 digits, 7 to 15 of them, maybe a "+") standing on
// its own: not part of a longer word or hex string, so trace ids and hashes are left alone.
const PHONE = String.raw`\+?\d{7,15}(?![\p{L}\p{N}])`;
const PHONE_START = String.raw`(?<![\p{L}\p{N}])`;

// In URL-encoded text ("PN1%3A34600111222%2Fj1", "%2B34600111222", twice encoded "%253A…") an
// escape before an id stands for a separator, but ends in a hex digit, which the starts above take
// for part of a longer word. Encoders leave digits, letters and dots alone, so the id itself reads
// as written; a "+" (a space in a query) is a separator already.
const AFTER_ESCAPE = "(?<=%(?:25)*[0-9A-Fa-f]{2})";

const BSUID_LIKE = new RegExp(`${BSUID_START}${BSUID}`, "gu");
const PHONE_LIKE = new RegExp(`${PHONE_START}${PHONE}`, "gu");
const BSUID_LIKE_ENCODED = new RegExp(`(?:${BSUID_START}|${AFTER_ESCAPE})${BSUID}`, "gu");
const PHONE_LIKE_ENCODED = new RegExp(`(?:${PHONE_START}|${AFTER_ESCAPE})${PHONE}`, "gu");

// The signature of a signed link (the design image sent to a shop): whoever reads it can use the
// link until it expires, so a URL logged or recorded by an HTTP span keeps its path, not its key.
const LINK_SIGNATURE = /([?&]signature=)[^&\s"'#]+/g;

/**
 * `text` with every BSUID and every phone-number-like run of digits replaced by its pseudonym, as
 * written or URL-encoded: the last line of defence for ids that travel inside other strings (error
 * messages, Kafka keys, round ids, URLs). BSUIDs first: their digits would otherwise be taken for a
 * phone number and half-hidden. Link signatures are removed. It runs on every log line written, so
 * text without a "%" (nearly every line) pays for the plain patterns only.
 */
export function redact(text: string): string {
  const encoded = text.includes("%");
  const redacted = text
    .replace(encoded ? BSUID_LIKE_ENCODED : BSUID_LIKE, (bsuid) => pseudonym(bsuid))
    .replace(encoded ? PHONE_LIKE_ENCODED : PHONE_LIKE, (digits) => pseudonym(digits.replace(/^\+/, "")));
  return redacted.includes("signature=") ? redacted.replace(LINK_SIGNATURE, "$1[redacted]") : redacted;
}

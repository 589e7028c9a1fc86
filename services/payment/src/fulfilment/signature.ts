import { signPayload, verifySignature } from "../domain/signature.ts";

/**
 * What the deliverer's posts and the shop's calls carry, in Stripe's scheme (domain/signature.ts):
 * `Taituri-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. A shop
 * rotating its secret has both in the secrets file for a while: every post then carries one v1 per
 * secret, so the shop's verifier accepts it with either, and a call from the shop is accepted if it
 * is signed with any of them.
 */
export const SIGNATURE_HEADER = "Taituri-Signature";
/** The event id ("order.paid:<number>"), the same on every attempt: what a shop deduplicates on. */
export const EVENT_ID_HEADER = "Taituri-Event-Id";
/** A signature whose timestamp is further than this from now is refused: a captured call cannot be replayed later. */
export const SIGNATURE_TOLERANCE_S = 300;

/** The header value for `body` signed at `at` with each of `secrets` (the current one first). */
export function signBody(body: string | Buffer, secrets: readonly string[], at: Date): string {
  if (secrets.length === 0) throw new Error("signing needs at least one secret");
  const t = Math.floor(at.getTime() / 1000);
  const macs = secrets.map((secret) => signPayload(body, secret, t).slice(`t=${t},`.length));
  return `t=${t},${macs.join(",")}`;
}

/** Whether `header` signs `body` with one of `secrets`, made within the tolerance of `at`. */
export function verifyBody(
  body: Buffer,
  header: string | undefined,
  secrets: readonly string[],
  at: Date,
  toleranceSeconds = SIGNATURE_TOLERANCE_S,
): boolean {
  const nowSeconds = Math.floor(at.getTime() / 1000);
  return secrets.some((secret) => verifySignature(body, header, secret, { toleranceSeconds, nowSeconds }).ok);
}

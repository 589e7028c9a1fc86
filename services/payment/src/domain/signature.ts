import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Webhook signatures in Stripe's scheme, for the local provider: the header is
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` (several v1 entries allowed, for
 * secret rotation). The timestamp is inside the MAC, so a captured request cannot be replayed
 * after the tolerance window; comparing in constant time leaks nothing about the expected MAC.
 */
export function signPayload(payload: string | Buffer, secret: string, timestampSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${timestampSeconds}.`).update(payload).digest("hex");
  return `t=${timestampSeconds},v1=${mac}`;
}

export type SignatureCheck =
  | { ok: true }
  | { ok: false; reason: "missing" | "malformed" | "stale" | "mismatch" };

export function verifySignature(
  payload: Buffer,
  header: string | undefined,
  secret: string,
  options: { toleranceSeconds: number; nowSeconds: number },
): SignatureCheck {
  if (!header) return { ok: false, reason: "missing" };
  let timestamp: number | undefined;
  const macs: Buffer[] = [];
  for (const part of header.split(",")) {
    const [key, value] = part.split("=", 2).map((s) => s.trim());
    if (key === "t" && value && /^\d+$/.test(value)) timestamp = Number(value);
    if (key === "v1" && value && /^[0-9a-f]{64}$/.test(value)) macs.push(Buffer.from(value, "hex"));
  }
  if (timestamp === undefined || macs.length === 0) return { ok: false, reason: "malformed" };
  if (Math.abs(options.nowSeconds - timestamp) > options.toleranceSeconds)
    return { ok: false, reason: "stale" };
  const expected = createHmac("sha256", secret).update(`${timestamp}.`).update(payload).digest();
  return macs.some((mac) => timingSafeEqual(mac, expected))
    ? { ok: true }
    : { ok: false, reason: "mismatch" };
}

import { createHmac, timingSafeEqual } from "node:crypto";

const HEADER_FORMAT = /^sha256=([0-9a-f]{64})$/i;

export type SignatureCheck = "valid" | "missing" | "malformed" | "mismatch";

/** What is wrong with the header on its own, before any body is read: missing or malformed. */
export function signatureHeaderProblem(header: string | undefined): "missing" | "malformed" | undefined {
  if (header === undefined || header === "") return "missing";
  return HEADER_FORMAT.test(header.trim()) ? undefined : "malformed";
}

/**
 * Checks Meta's X-Hub-Signature-256 header: "sha256=" + hex HMAC-SHA256 of the raw request body
 * under the app secret. Compared in constant time against each accepted secret (several during a
 * rotation), so response timing reveals nothing about the expected value.
 */
export function checkSignature(
  rawBody: Buffer,
  header: string | undefined,
  secrets: readonly string[],
): SignatureCheck {
  if (header === undefined || header === "") return "missing";
  const match = HEADER_FORMAT.exec(header.trim());
  if (!match?.[1]) return "malformed";
  const given = Buffer.from(match[1].toLowerCase(), "hex");
  let valid = false;
  // Every secret is tried even after a match, so the time taken does not say which one matched.
  for (const secret of secrets) {
    const expected = createHmac("sha256", secret).update(rawBody).digest();
    if (timingSafeEqual(expected, given)) valid = true;
  }
  return valid ? "valid" : "mismatch";
}

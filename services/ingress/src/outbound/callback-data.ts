import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomFillSync,
} from "node:crypto";

const IV_BYTES = 12;

/**
 * The biz_opaque_callback_data a send carries, and Meta echoes in each of the message's statuses:
 * the outbound id, sealed. Outbound ids name what caused them (a payment's or a round's id, which
 * hold the conversation id, so the shopper's phone number or BSUID): that must not travel in a field
 * the recipient's address does not need, and that Meta passes to every app subscribed to the
 * account. AES-256-GCM under a key derived from PSEUDONYM_KEY: only our services read it, and a
 * value another app set (or anyone forged) fails authentication and names nothing. A random IV per
 * send: nothing is ever looked up by this value, only opened.
 */
export class CallbackData {
  // A KeyObject, not the bytes: given bytes, every cipher imports the key anew (a seal took
  // 20-25 µs of CPU against 8 µs; it runs for every reply sent).
  readonly #key: KeyObject;

  constructor(secret: string) {
    this.#key = createSecretKey(
      Buffer.from(hkdfSync("sha256", secret, "", "taituri outbound callback data v1", 32)),
    );
  }

  /**
   * Random bytes for the IVs, drawn from the CSPRNG 256 IVs at a time: a call to it per seal was
   * 2 % of the dispatcher's CPU at 500 messages/s (bench/README.md). Each IV is used once.
   */
  readonly #ivs = Buffer.alloc(IV_BYTES * 256);
  #nextIv = this.#ivs.length;

  /** The sealed id, base64url (12-byte IV, ciphertext, 16-byte tag): about 4/3 of the id plus 38. */
  seal(outboundId: string): string {
    if (this.#nextIv === this.#ivs.length) {
      randomFillSync(this.#ivs);
      this.#nextIv = 0;
    }
    // A view, read before this returns: the cipher copies it, and so does the concat below.
    const iv = this.#ivs.subarray(this.#nextIv, this.#nextIv + IV_BYTES);
    this.#nextIv += IV_BYTES;
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    const body = Buffer.concat([cipher.update(outboundId, "utf8"), cipher.final()]);
    return Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url");
  }

  /** The outbound id a sealed value holds, or undefined for anything we did not seal. */
  open(data: string): string | undefined {
    const bytes = Buffer.from(data, "base64url");
    if (bytes.length < 12 + 16 + 1) return undefined;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, bytes.subarray(0, 12));
      decipher.setAuthTag(bytes.subarray(bytes.length - 16));
      return Buffer.concat([
        decipher.update(bytes.subarray(12, bytes.length - 16)),
        decipher.final(),
      ]).toString("utf8");
    } catch {
      return undefined;
    }
  }
}

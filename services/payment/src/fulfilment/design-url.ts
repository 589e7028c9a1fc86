import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Links to an order's design for the shop: `GET <public base>/orders/<number>/design?expires=<unix
 * seconds>&signature=<hex HMAC-SHA256(secret, "<number>.<expires>")>`. Whoever holds the link can
 * fetch the image until it expires, and no longer: the expiry is inside the MAC. A fresh link goes
 * with every delivery attempt, so a shop whose endpoint was down for days still gets one that works.
 */
export interface DesignUrls {
  /** A link valid for the configured time from `at`. */
  make(orderNumber: string, at: Date): { url: string; expiresAt: Date };
  /** Whether the link's number, expiry and signature are ours and not expired at `at`. */
  verify(orderNumber: string, expires: string | undefined, signature: string | undefined, at: Date): boolean;
}

export function designSignature(orderNumber: string, expires: number, secret: string): string {
  return createHmac("sha256", secret).update(`${orderNumber}.${expires}`).digest("hex");
}

export function createDesignUrls(options: {
  secret: string;
  ttlSeconds: number;
  /** The payment service's public base URL; known once the server listens when not configured. */
  publicUrl: () => string;
}): DesignUrls {
  return {
    make(orderNumber, at) {
      const expires = Math.floor(at.getTime() / 1000) + options.ttlSeconds;
      const signature = designSignature(orderNumber, expires, options.secret);
      return {
        url: `${options.publicUrl()}/orders/${encodeURIComponent(orderNumber)}/design?expires=${expires}&signature=${signature}`,
        expiresAt: new Date(expires * 1000),
      };
    },
    verify(orderNumber, expires, signature, at) {
      if (!expires || !/^\d{1,12}$/.test(expires) || !signature || !/^[0-9a-f]{64}$/.test(signature))
        return false;
      if (Number(expires) * 1000 <= at.getTime()) return false;
      const expected = Buffer.from(designSignature(orderNumber, Number(expires), options.secret), "hex");
      return timingSafeEqual(Buffer.from(signature, "hex"), expected);
    },
  };
}

import { randomBytes } from "node:crypto";

/**
 * The Graph API's error body. Cloud API errors carry `error_data.details` (what to fix) and, since
 * v16.0, no `error_subcode`; the Graph API's own errors (a bad token, an unknown object) carry no
 * `error_data`, and a subcode where Meta's reference gives one (33: the object does not exist).
 * Meta's reference: developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
 */
export interface MetaErrorBody {
  error: {
    message: string;
    type: string;
    code: number;
    error_subcode?: number;
    error_data?: { messaging_product: "whatsapp"; details: string };
    fbtrace_id: string;
  };
}

export interface MetaError {
  status: number;
  body: MetaErrorBody;
}

/** An id like Meta's fbtrace_id (23 URL-safe base64 characters), which support asks for. */
const fbtraceId = () => randomBytes(18).toString("base64url").slice(0, 23);

/** A Cloud API error: `(#code) title` as the message, the details in error_data. */
function cloudApiError(status: number, code: number, title: string, details: string): MetaError {
  return {
    status,
    body: {
      error: {
        message: `(#${code}) ${title}`,
        type: "OAuthException",
        code,
        error_data: { messaging_product: "whatsapp", details },
        fbtrace_id: fbtraceId(),
      },
    },
  };
}

/** Each error the simulator answers, by Meta's code; `details` is what the caller did wrong. */
export const MetaErrors = {
  /** 100: a parameter is missing, misspelled, or outside its limits. HTTP 400. */
  invalidParameter: (details: string) => cloudApiError(400, 100, "Invalid parameter", details),

  /**
   * 100 with subcode 33: the phone number id (or media id) is not an object this token may use.
   * A Graph API error, so its message has no "(#100)" and it has no error_data.
   */
  unknownObject: (id: string, method: "get" | "post" | "delete"): MetaError => ({
    status: 400,
    body: {
      error: {
        message: `Unsupported ${method} request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
        type: "GraphMethodException",
        code: 100,
        error_subcode: 33,
        fbtrace_id: fbtraceId(),
      },
    },
  }),

  /** 190: no access token, or not one Meta issued. HTTP 401, a Graph API error (no error_data). */
  invalidAccessToken: (): MetaError => ({
    status: 401,
    body: {
      error: {
        message: "Invalid OAuth access token - Cannot parse access token",
        type: "OAuthException",
        code: 190,
        fbtrace_id: fbtraceId(),
      },
    },
  }),

  /** 131047: a free-form message more than 24 hours after the shopper last wrote. HTTP 400. */
  reEngagement: () =>
    cloudApiError(
      400,
      131047,
      "Re-engagement message",
      "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),

  /**
   * 131062: a message addressed to a business-scoped user id (`recipient`) of a kind Meta does not
   * deliver to BSUIDs (authentication templates). HTTP 400; the same message to the phone number goes.
   */
  bsuidUnsupported: () =>
    cloudApiError(
      400,
      131062,
      "Business-scoped User ID (BSUID) recipients are not supported for this message",
      "Authentication templates cannot be sent to a business-scoped user ID. Send this message to the user's phone number instead.",
    ),

  /** 130429: the business number's throughput (80 messages/s by default) is used up. HTTP 400. */
  rateLimit: () =>
    cloudApiError(
      400,
      130429,
      "Rate limit hit",
      "Message failed to send because there were too many messages sent from this phone number in a short period of time",
    ),

  /** 131056: too many messages from one business number to one shopper in a short time. HTTP 400. */
  pairRateLimit: () =>
    cloudApiError(
      400,
      131056,
      "(Business Account, Consumer Account) pair rate limit hit",
      "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time",
    ),
} as const;

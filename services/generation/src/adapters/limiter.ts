import { readFile } from "node:fs/promises";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { createTokenSource } from "@taituri/oidc";
import { limiter } from "@taituri/proto";

/** The limiter could not decide: unreachable, too slow, or refusing our credentials. */
export class LimiterUnavailableError extends Error {
  override readonly name = "LimiterUnavailableError";
}

export interface RoundLimiter {
  /** All or nothing over the rule set; the round id makes a repeat count once. */
  consume(request: { shopId: string; shopperId: string; cost: number; key: string }): Promise<{
    allowed: boolean;
    retryAfterMs: number;
  }>;
  /** Gives back what the key consumed; a second refund changes nothing. */
  refund(key: string): Promise<string>;
  close(): void;
}

export interface LimiterClientOptions {
  address: string;
  ruleSet: string;
  timeoutMs: number;
  /** A bearer token for the limiter's audience. */
  token: () => Promise<string>;
}

/**
 * Calls spread over every address the target resolves to. grpc-js's default, pick_first, keeps a
 * generation pod on one limiter pod for the life of its connection; with a headless Service
 * (`dns:///<name>.<namespace>.svc:50051`, one address per pod) round_robin spreads the decisions
 * and moves off a pod that goes away. grpc-js re-resolves when a connection drops.
 */
export const LIMITER_CHANNEL_OPTIONS = {
  "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
};

/** The limiter's gRPC client: each call carries a fresh-enough OIDC token and a deadline. */
export function createLimiterClient(options: LimiterClientOptions): RoundLimiter {
  const client = new limiter.LimiterServiceClient(
    options.address,
    credentials.createInsecure(),
    LIMITER_CHANNEL_OPTIONS,
  );
  const call = async <Req, Res>(
    method: (
      request: Req,
      metadata: Metadata,
      opts: { deadline: Date },
      cb: (e: ServiceError | null, r: Res) => void,
    ) => unknown,
    request: Req,
  ): Promise<Res> => {
    let token: string;
    try {
      token = await options.token();
    } catch (error) {
      throw new LimiterUnavailableError(
        `no token for the limiter: ${error instanceof Error ? error.message : error}`,
      );
    }
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    return new Promise<Res>((resolve, reject) =>
      method.call(
        client,
        request,
        metadata,
        { deadline: new Date(Date.now() + options.timeoutMs) },
        (error, response) =>
          error
            ? reject(new LimiterUnavailableError(`limiter: ${error.code} ${error.details}`))
            : resolve(response),
      ),
    );
  };
  return {
    async consume({ shopId, shopperId, cost, key }) {
      const response = await call<limiter.ConsumeRequest, limiter.ConsumeResponse>(client.consume, {
        subject: { shopId, shopperId },
        ruleSet: options.ruleSet,
        cost,
        idempotencyKey: key,
      });
      return { allowed: response.allowed, retryAfterMs: response.retryAfterMs };
    },
    async refund(key) {
      const response = await call<limiter.RefundRequest, limiter.RefundResponse>(client.refund, {
        idempotencyKey: key,
      });
      return limiter.refundStatusToJSON(response.status);
    },
    close: () => client.close(),
  };
}

/**
 * Where the limiter's tokens come from: a projected service-account token file (Kubernetes; read
 * at most every 30 s, the kubelet rotates it), else the client-credentials grant at the issuer.
 */
export function tokenSourceFor(config: {
  OIDC_TOKEN_FILE?: string;
  OIDC_TOKEN_URL?: string;
  OIDC_ISSUER_URL: string;
  OIDC_CLIENT_ID: string;
  OIDC_CLIENT_SECRET?: string;
  LIMITER_AUDIENCE: string;
}): () => Promise<string> {
  const file = config.OIDC_TOKEN_FILE;
  if (file) {
    let cached: { token: string; at: number } | undefined;
    return async () => {
      if (cached && Date.now() - cached.at < 30_000) return cached.token;
      cached = { token: (await readFile(file, "utf8")).trim(), at: Date.now() };
      return cached.token;
    };
  }
  const secret = config.OIDC_CLIENT_SECRET;
  if (!secret)
    return async () => {
      throw new Error("neither OIDC_TOKEN_FILE nor OIDC_CLIENT_SECRET is set");
    };
  return createTokenSource({
    tokenUrl: config.OIDC_TOKEN_URL ?? `${config.OIDC_ISSUER_URL.replace(/\/$/, "")}/token`,
    clientId: config.OIDC_CLIENT_ID,
    clientSecret: secret,
    audience: config.LIMITER_AUDIENCE,
  });
}

import { Metadata, type ServerUnaryCall, type sendUnaryData, status } from "@grpc/grpc-js";
import type { Logger } from "@taituri/logging";
import { AuthError, type CallerClaims, type Verifier } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import { type AccessPolicy, decideAccess, type Rpc, refusal } from "../domain/access.ts";
import type { RuleSet, Rules } from "../domain/rules.ts";
import type { Metrics } from "../metrics.ts";
import { IdempotencyConflictError, type Outcome, type Store, SubjectError } from "./store.ts";

/** A request the rules cannot serve: unknown rule set, bad cost or key. */
class InvalidRequestError extends Error {}

/** Redis failed or timed out and the call cannot be decided. */
class UnavailableError extends Error {}

/** A valid token that may not do this: a caller not listed, or an admin RPC without the admin scope. */
class PermissionError extends Error {}

export interface HandlerDeps {
  store: Store;
  rules: () => Rules;
  verifier: Verifier;
  /** Who may call which RPC. */
  access: AccessPolicy;
  metrics: Metrics;
  logger: Logger;
}

const maxKeyLength = 200;

/**
 * The LimiterService handlers. Every RPC first verifies the caller's OIDC token, then whether that
 * caller may call it (domain/access.ts), before it reads anything; typed errors become status
 * codes: AuthError → UNAUTHENTICATED, a caller not listed or an admin RPC (Peek, ResetUsage)
 * without admin rights → PERMISSION_DENIED, a bad request → INVALID_ARGUMENT, Redis down on a
 * fail-closed rule set → UNAVAILABLE.
 */
export function createHandlers(deps: HandlerDeps): limiter.LimiterServiceServer {
  const { store, metrics } = deps;

  const ruleSetOf = (name: string): RuleSet => {
    const ruleSet = deps.rules().ruleSets.get(name);
    if (!ruleSet) throw new InvalidRequestError(`unknown rule set "${name}"`);
    return ruleSet;
  };
  const subjectOf = (subject: limiter.Subject | undefined) => ({
    shopId: subject?.shopId ?? "",
    shopperId: subject?.shopperId ?? "",
  });
  const redis = async <T>(work: Promise<T>): Promise<T> => {
    try {
      return await work;
    } catch (error) {
      if (error instanceof IdempotencyConflictError || error instanceof SubjectError) throw error;
      metrics.redisErrors.inc();
      deps.logger.warn({ err: error }, "redis call failed");
      throw new UnavailableError(`redis unavailable: ${error instanceof Error ? error.message : error}`);
    }
  };

  /** The verified caller, if it may call `rpc`; a PermissionError (logged, without the request) if not. */
  const admit = (rpc: Rpc, claims: CallerClaims): string => {
    const decision = decideAccess(rpc, claims, deps.access);
    if (decision.allowed) return decision.caller;
    deps.logger.warn({ by: decision.caller, rpc, missing: decision.missing }, "limiter call refused");
    throw new PermissionError(refusal(rpc, decision, deps.access));
  };

  function unary<Req, Res>(
    rpc: Rpc,
    handle: (request: Req, caller: string) => Promise<{ response: Res; ruleSet: string; outcome: string }>,
  ) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const stop = metrics.latency.startTimer({ rpc });
      const header = call.metadata.get("authorization")[0];
      deps.verifier
        .verify(typeof header === "string" ? header : undefined)
        // Checked before the request is looked at, so a refused caller learns nothing of the rules.
        .then((claims) => handle(call.request, admit(rpc, claims)))
        .then(
          ({ response, ruleSet, outcome }) => {
            metrics.calls.inc({ rpc, rule_set: ruleSet, outcome });
            callback(null, response);
          },
          (error: unknown) => {
            const [code, outcome] = classify(error);
            // Only configured names become label values: a caller cannot grow the series count.
            const name = ruleSetName(call.request);
            const known = deps.rules().ruleSets.has(name) ? name : "";
            metrics.calls.inc({ rpc, rule_set: known, outcome });
            if (code === status.INTERNAL) deps.logger.error({ err: error, rpc }, "limiter call failed");
            const details = error instanceof Error ? error.message : String(error);
            callback({ code, details, metadata: new Metadata() });
          },
        )
        .finally(stop);
    };
  }

  return {
    consume: unary<limiter.ConsumeRequest, limiter.ConsumeResponse>("consume", async (request, caller) => {
      const ruleSet = ruleSetOf(request.ruleSet);
      if (request.cost < 1 || request.cost > ruleSet.maxCost)
        throw new InvalidRequestError(`cost must be between 1 and ${ruleSet.maxCost}`);
      if (request.idempotencyKey.length > maxKeyLength)
        throw new InvalidRequestError(`idempotency_key longer than ${maxKeyLength}`);
      const subject = subjectOf(request.subject);
      let outcome: Outcome;
      try {
        outcome = await redis(
          store.consume(
            ruleSet,
            subject,
            request.cost,
            request.idempotencyKey ? { owner: caller, key: request.idempotencyKey } : undefined,
            deps.rules().idempotencyTtlMs,
          ),
        );
      } catch (error) {
        if (!(error instanceof UnavailableError) || ruleSet.onRedisError === "deny") throw error;
        // Fail open: this rule set prefers serving to limiting while Redis is down.
        return {
          response: { allowed: true, limits: [], retryAfterMs: 0, replayed: false, degraded: true },
          ruleSet: ruleSet.name,
          outcome: "failed_open",
        };
      }
      if (!outcome.replayed) record(outcome, ruleSet);
      return {
        response: {
          allowed: outcome.allowed,
          retryAfterMs: outcome.retryAfterMs,
          replayed: outcome.replayed,
          degraded: false,
          limits: states(outcome),
        },
        ruleSet: ruleSet.name,
        outcome: outcome.replayed ? "replayed" : outcome.allowed ? "allowed" : "denied",
      };
    }),

    refund: unary<limiter.RefundRequest, limiter.RefundResponse>("refund", async (request, caller) => {
      if (!request.idempotencyKey || request.idempotencyKey.length > maxKeyLength)
        throw new InvalidRequestError(`idempotency_key is required, at most ${maxKeyLength} characters`);
      // The caller's own key only: another caller's consume is "not found" to it.
      const result = await redis(store.refund({ owner: caller, key: request.idempotencyKey }));
      const statuses = {
        refunded: limiter.RefundStatus.REFUND_STATUS_REFUNDED,
        already: limiter.RefundStatus.REFUND_STATUS_ALREADY_REFUNDED,
        "not-consumed": limiter.RefundStatus.REFUND_STATUS_NOT_CONSUMED,
        "not-found": limiter.RefundStatus.REFUND_STATUS_NOT_FOUND,
      } as const;
      return {
        response: { refunded: result === "refunded", status: statuses[result] },
        ruleSet: "",
        outcome: result,
      };
    }),

    peek: unary<limiter.PeekRequest, limiter.PeekResponse>("peek", async (request) => {
      const ruleSet = ruleSetOf(request.ruleSet);
      const outcome = await redis(store.peek(ruleSet, subjectOf(request.subject)));
      return { response: { limits: states(outcome) }, ruleSet: ruleSet.name, outcome: "ok" };
    }),

    resetUsage: unary<limiter.ResetUsageRequest, limiter.ResetUsageResponse>(
      "reset_usage",
      async (request, caller) => {
        const ruleSet = ruleSetOf(request.ruleSet);
        const deleted = await redis(store.reset(ruleSet, subjectOf(request.subject)));
        deps.logger.info(
          { by: caller, ruleSet: ruleSet.name, subject: request.subject, deleted },
          "usage reset",
        );
        return { response: { deleted }, ruleSet: ruleSet.name, outcome: "ok" };
      },
    ),
  };

  function record(outcome: Outcome, ruleSet: RuleSet): void {
    for (const state of outcome.limits) {
      const { limit } = state;
      const result = state.allowed ? "allowed" : limit.shadow ? "shadow_denied" : "denied";
      metrics.decisions.inc({ rule_set: ruleSet.name, limit: limit.name, outcome: result });
      if (outcome.allowed && state.allowed)
        metrics.usage.observe({ limit: limit.name }, 1 - state.remaining / limit.limit);
    }
  }
}

function states(outcome: Outcome): limiter.LimitState[] {
  return outcome.limits.map((state) => ({
    limit: state.limit.name,
    allowed: state.allowed,
    remaining: state.remaining,
    resetAfterMs: state.resetAfterMs,
    retryAfterMs: state.retryAfterMs,
    shadow: state.limit.shadow,
  }));
}

function classify(error: unknown): [status, string] {
  if (error instanceof AuthError) return [status.UNAUTHENTICATED, "unauthenticated"];
  if (error instanceof PermissionError) return [status.PERMISSION_DENIED, "forbidden"];
  if (
    error instanceof InvalidRequestError ||
    error instanceof SubjectError ||
    error instanceof IdempotencyConflictError
  )
    return [status.INVALID_ARGUMENT, "invalid"];
  if (error instanceof UnavailableError) return [status.UNAVAILABLE, "failed_closed"];
  return [status.INTERNAL, "error"];
}

function ruleSetName(request: unknown): string {
  const name = (request as { ruleSet?: unknown } | null)?.ruleSet;
  return typeof name === "string" ? name : "";
}

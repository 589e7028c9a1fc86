import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  backoffMs,
  decodeRecord,
  encodeRecord,
  Header,
  type IncomingMessage,
  isTransientKafkaError,
  PermanentError,
  type Publisher,
  Records,
  type TopicNames,
  TransientError,
} from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { asTransient, type ImageStore, retryWrite } from "@taituri/mongo";
import type { generation } from "@taituri/proto";
import { redact, SpanKind, trace, withSpan } from "@taituri/telemetry";
import { LimiterUnavailableError, type RoundLimiter } from "../adapters/limiter.ts";
import type { CallResult, ImageProvider } from "../adapters/provider.ts";
import type { RoundStore } from "../adapters/store.ts";
import { ATTEMPT_MARGIN_MS } from "../config.ts";
import { estimateCents, limiterCost, type PriceTable } from "../domain/cost.ts";
import type { DesignBrief } from "../domain/prompt.ts";
import {
  FailureReason,
  failureReasonFor,
  isRetryable,
  mayHaveCharged,
  type RoundState,
  requestProblem,
} from "../domain/round.ts";
import type { Metrics } from "../metrics.ts";

export interface RoundHandlerDeps {
  store: RoundStore;
  images: ImageStore;
  provider: ImageProvider;
  limiter: RoundLimiter;
  publisher: Publisher;
  topics: TopicNames;
  prices: PriceTable;
  metrics: Metrics;
  logger: Logger;
  leaseMs: number;
  maxAttempts: number;
  maxDesigns: number;
  limiterMaxCost: number;
  /** No-charge retries per attempt, their first wait, and the provider's call timeout. */
  maxRetries: number;
  retryBaseMs: number;
  callTimeoutMs: number;
  now?: () => Date;
}

type Outcome = NonNullable<generation.GenerationResult["outcome"]>;

/**
 * A round this worker gives back because it is shutting down: not claimed at all, or claimed and
 * released (its provider call, if any, cancelled and counted as paid). Transient, so the consumer
 * leaves the offset uncommitted and the request comes back, to another replica or after the restart.
 */
export class HandedBack extends TransientError {}

/**
 * Turns each generation request into at most GENERATION_MAX_ATTEMPTS paid provider calls and one
 * published result.
 *
 * Idempotency key: the round id, enforced by the unique `_id` of `generation_rounds` (the claim)
 * and carried to the limiter (Consume and Refund) and into the image ids. A delivery of a round
 * that is finished publishes nothing new unless its result's publish was never acknowledged; a
 * delivery of a round another worker holds is retried in place (TransientError) until that worker
 * finishes or its lease expires and this delivery takes over, so a crash never strands a round.
 */
export function createRoundHandler(deps: RoundHandlerDeps) {
  const { store, metrics, logger, provider } = deps;
  const now = deps.now ?? (() => new Date());
  /** Set by drain: no round is claimed any more. */
  let draining = false;
  /** The rounds in hand, each with what cancels its provider call. */
  const inFlight = new Set<{ cancel: AbortController; done: Promise<unknown> }>();

  /**
   * Retries a write (or the result's publish) that must not be lost after money was spent, until
   * the lease ends: past it, another worker may take the round over.
   */
  function persist<T>(leaseUntil: Date, work: () => Promise<T>): Promise<T> {
    return retryWrite(work, {
      until: leaseUntil,
      initialMs: 200,
      maxMs: 5000,
      alsoRetry: isTransientKafkaError,
      onRetry: (error, attempt) =>
        logger.warn({ err: error, attempt }, "write after a paid call failed; retrying"),
    });
  }

  /** Publishes a result as recorded (its encoded bytes: the winner's, or one read back to relay it). */
  async function publish(conversationId: string, roundId: string, result: Uint8Array): Promise<void> {
    await deps.publisher.send(deps.topics.generationResults, [
      {
        key: conversationId,
        id: roundId,
        value: result,
        headers: { [Header.type]: Records.generationResult.contentType },
      },
    ]);
  }

  /** Records the result (first finisher wins), then publishes it and marks it published. */
  async function conclude(
    request: generation.GenerationRequest,
    state: Exclude<RoundState, "in_progress">,
    outcome: Outcome,
    leaseUntil: Date,
  ): Promise<void> {
    const { value: result } = encodeRecord(Records.generationResult, {
      roundId: request.roundId,
      conversationId: request.conversationId,
      outcome,
    });
    const won = await persist(leaseUntil, () => store.finish(request.roundId, state, result, now()));
    if (!won) {
      metrics.rounds.inc({ outcome: "superseded" });
      // The winner publishes its own result; if it dies first, its delivery comes back, finds
      // the result unpublished and the lease expired, and publishes it.
      return;
    }
    await persist(leaseUntil, () => publish(request.conversationId, request.roundId, result));
    await persist(leaseUntil, () => store.markPublished(request.roundId, now()));
    metrics.rounds.inc({ outcome: state });
  }

  async function refund(roundId: string): Promise<void> {
    try {
      const status = await deps.limiter.refund(roundId);
      metrics.limiter.inc({ rpc: "refund", result: status.replace(/^REFUND_STATUS_/, "").toLowerCase() });
    } catch (error) {
      // The limiter's budget stays spent for this round: the shopper may wait a little longer
      // for the next one, which is the safe side. Counted, logged, not retried.
      metrics.limiter.inc({ rpc: "refund", result: "unavailable" });
      logger.warn({ err: error, roundId }, "refund of an unpaid round failed");
    }
  }

  /**
   * One attempt's provider calls: a call that failed without charge (429, connection refused) is
   * retried while the lease leaves room for a whole call; any other failure ends the attempt.
   * Every call is written to the ledger before it starts and updated when it ends.
   */
  async function callProvider(
    brief: DesignBrief & { shopId: string },
    attempt: number,
    count: number,
    leaseUntil: Date,
    signal: AbortSignal,
  ): Promise<{ result: CallResult; anyPaid: boolean }> {
    const estimate = estimateCents(deps.prices, {
      provider: provider.name,
      model: provider.model,
      quality: provider.quality,
      size: provider.size,
      images: count,
    });
    let anyPaid = false;
    for (let call = 1; ; call++) {
      if (signal.aborted) throw new HandedBack(`round ${brief.roundId} handed back before its provider call`);
      const id = `${brief.roundId}#${attempt}.${call}`;
      await store.callStarted({
        _id: id,
        roundId: brief.roundId,
        shopId: brief.shopId,
        attempt,
        provider: provider.name,
        model: provider.model,
        size: provider.size,
        quality: provider.quality,
        images: count,
        estimatedCents: estimate,
        startedAt: now(),
      });
      const started = performance.now();
      const result = await withSpan(
        "@taituri/generation",
        `${provider.name} images.generate`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            "gen_ai.system": provider.name,
            "gen_ai.request.model": provider.model,
            "round.id": redact(brief.roundId),
          },
        },
        async (span): Promise<CallResult> => {
          const r = await provider
            .generate(brief, count, signal)
            .catch((error: unknown): CallResult => ({ outcome: "server_error", detail: String(error) }));
          span.setAttribute("gen_ai.outcome", r.outcome);
          return r;
        },
      );
      const latencyMs = Math.round(performance.now() - started);
      const paid = mayHaveCharged(result.outcome);
      anyPaid ||= paid;
      const cents = paid ? estimate : 0;
      metrics.calls.inc({ provider: provider.name, outcome: result.outcome });
      metrics.callSeconds.observe({ provider: provider.name, outcome: result.outcome }, latencyMs / 1000);
      if (paid) {
        metrics.paidCalls.inc({ provider: provider.name });
        metrics.costCents.inc({ shop: brief.shopId }, cents);
      }
      await persist(leaseUntil, () =>
        store.callEnded(id, {
          outcome: result.outcome,
          paid,
          latencyMs,
          estimatedCents: cents,
          ...(result.outcome === "ok" ? {} : { detail: result.detail.slice(0, 500) }),
        }),
      );
      if (result.outcome === "cancelled")
        throw new HandedBack(`round ${brief.roundId} handed back: its provider call was cancelled`);
      if (result.outcome === "ok" || !isRetryable(result.outcome) || call > deps.maxRetries)
        return { result, anyPaid };
      const ceiling = deps.retryBaseMs * 2 ** (call - 1);
      const wait = result.retryAfterMs
        ? Math.min(result.retryAfterMs, ceiling)
        : backoffMs(call, deps.retryBaseMs, ceiling);
      // Never start a call that could still be running when the lease ends.
      if (Date.now() + wait + deps.callTimeoutMs + ATTEMPT_MARGIN_MS > leaseUntil.getTime())
        return { result, anyPaid };
      logger.warn(
        { roundId: brief.roundId, outcome: result.outcome, wait },
        "provider did not charge; retrying",
      );
      await sleep(wait, undefined, { signal }).catch(() => {
        throw new HandedBack(`round ${brief.roundId} handed back while waiting to retry`);
      });
    }
  }

  async function attempt(
    request: generation.GenerationRequest,
    attemptNo: number,
    leaseUntil: Date,
    owner: string,
    signal: AbortSignal,
  ) {
    const count = Math.min(Math.max(1, request.count), deps.maxDesigns);
    const brief = {
      roundId: request.roundId,
      recipient: request.recipient,
      theme: request.theme,
      style: request.style,
      productId: request.productId,
      shopId: request.shopId,
    };
    let paidCallMade = false;
    try {
      const estimate = estimateCents(deps.prices, {
        provider: provider.name,
        model: provider.model,
        quality: provider.quality,
        size: provider.size,
        images: count,
      });
      let decision: { allowed: boolean; retryAfterMs: number };
      try {
        decision = await deps.limiter.consume({
          shopId: request.shopId,
          shopperId: request.shopperId,
          cost: limiterCost(estimate, deps.limiterMaxCost),
          key: request.roundId,
        });
      } catch (error) {
        if (!(error instanceof LimiterUnavailableError)) throw error;
        // Fail closed: no decision, no paid call. The shopper is told to try again later rather
        // than left waiting for a limiter that may be down for long.
        metrics.limiter.inc({ rpc: "consume", result: "unavailable" });
        logger.error({ err: error, roundId: request.roundId }, "limiter unavailable; round failed closed");
        await conclude(
          request,
          "failed",
          { $case: "failed", value: { reason: FailureReason.limiterUnavailable } },
          leaseUntil,
        );
        return;
      }
      metrics.limiter.inc({ rpc: "consume", result: decision.allowed ? "allowed" : "denied" });
      if (!decision.allowed) {
        await conclude(
          request,
          "rejected",
          { $case: "rejected", value: { retryAfterMs: decision.retryAfterMs } },
          leaseUntil,
        );
        return;
      }
      if (attemptNo === 1) metrics.accepted.inc();

      const { result, anyPaid } = await callProvider(brief, attemptNo, count, leaseUntil, signal);
      paidCallMade = anyPaid;
      if (result.outcome !== "ok") {
        logger.warn(
          { roundId: request.roundId, outcome: result.outcome, detail: result.detail },
          "round failed",
        );
        if (!anyPaid) await refund(request.roundId);
        await conclude(
          request,
          "failed",
          { $case: "failed", value: { reason: failureReasonFor(result.outcome) } },
          leaseUntil,
        );
        return;
      }
      const designs = [];
      for (const [i, image] of result.images.entries()) {
        // The attempt is part of the id: a take-over never mixes its images with a crashed attempt's.
        const imageId = `${request.roundId}/a${attemptNo}/d${i + 1}`;
        await persist(leaseUntil, () =>
          deps.images.put(imageId, {
            bytes: image.bytes,
            contentType: image.contentType,
            filename: `design-${i + 1}.${image.extension}`,
          }),
        );
        designs.push({ id: `d${i + 1}`, imageId });
      }
      await conclude(request, "completed", { $case: "completed", value: { designs } }, leaseUntil);
    } catch (error) {
      // Failed before paying, or handed back by a shutdown: give the claim back now so the retry
      // need not wait for the lease. A handed-back attempt is spent all the same (its cancelled
      // call counts as paid), so the take-over is the next attempt and the bound holds.
      if (!paidCallMade || error instanceof HandedBack) {
        await store.release(request.roundId, owner, now()).catch(() => {});
        if (error instanceof HandedBack) {
          metrics.rounds.inc({ outcome: "handed_back" });
          logger.warn({ roundId: request.roundId, attempt: attemptNo }, error.message);
        }
      }
      throw error;
    }
  }

  /** One round, tracked while in hand so that drain can wait for it or cancel it. */
  async function handleRequest(request: generation.GenerationRequest): Promise<void> {
    if (draining) {
      metrics.rounds.inc({ outcome: "handed_back" });
      throw new HandedBack(`round ${request.roundId} not claimed: shutting down`);
    }
    const cancel = new AbortController();
    const done = claimAndRun(request, cancel.signal);
    const entry = { cancel, done: done.catch(() => {}) };
    inFlight.add(entry);
    try {
      await done;
    } finally {
      inFlight.delete(entry);
    }
  }

  async function claimAndRun(request: generation.GenerationRequest, signal: AbortSignal): Promise<void> {
    const owner = randomUUID();
    const claim = await store.claim(
      {
        roundId: request.roundId,
        conversationId: request.conversationId,
        shopId: request.shopId,
        shopperId: request.shopperId,
      },
      owner,
      now(),
      deps.leaseMs,
      deps.maxAttempts,
    );
    const span = trace.getActiveSpan();
    span?.setAttribute("generation.claim", claim.kind);
    switch (claim.kind) {
      case "claimed":
        metrics.claims.inc({ kind: claim.attempt === 1 ? "first" : "take_over" });
        if (claim.attempt > 1)
          logger.warn(
            { roundId: request.roundId, attempt: claim.attempt },
            "took over a round whose lease expired",
          );
        return attempt(request, claim.attempt, claim.leaseUntil, owner, signal);
      case "finished":
        metrics.rounds.inc({ outcome: "duplicate" });
        if (!claim.published) {
          await publish(request.conversationId, request.roundId, claim.result);
          await store.markPublished(request.roundId, now());
        }
        return;
      case "busy":
        metrics.rounds.inc({ outcome: "busy" });
        throw new TransientError(
          `round ${request.roundId} is held by another worker until ${claim.leaseUntil.toISOString()}`,
        );
      case "exhausted":
        logger.error({ roundId: request.roundId }, "round out of attempts after repeated crashes");
        await conclude(
          request,
          "failed",
          { $case: "failed", value: { reason: FailureReason.interrupted } },
          new Date(now().getTime() + deps.leaseMs),
        );
        return;
    }
  }

  /**
   * Stops claiming rounds and waits up to `deadlineMs` for those in hand to finish. Past it, their
   * provider calls are cancelled and their leases released, so another replica takes them over at
   * once (a take-over: the next attempt, which may pay again; the cancelled call counts as paid).
   * A call that has answered is never cancelled: its images are stored and its result recorded,
   * so no take-over pays for a call that completed.
   */
  async function drain(deadlineMs: number): Promise<void> {
    draining = true;
    const rounds = [...inFlight];
    if (rounds.length === 0) return;
    logger.info({ rounds: rounds.length, deadlineMs }, "waiting for the rounds in hand before stopping");
    const settled = Promise.all(rounds.map((round) => round.done));
    const timer = new AbortController();
    const expired = await Promise.race([
      settled.then(() => false),
      sleep(deadlineMs, true, { signal: timer.signal }).catch(() => false),
    ]);
    timer.abort();
    if (!expired) return;
    const left = rounds.filter((round) => inFlight.has(round));
    logger.warn(
      { rounds: left.length, deadlineMs },
      "drain deadline passed: cancelling provider calls and handing the rounds back",
    );
    for (const round of left) round.cancel.abort();
    await settled;
  }

  return {
    handleRequest,
    drain,
    /** The Kafka handler for the generation-requests topic. */
    async handle(message: IncomingMessage): Promise<void> {
      const request = decodeRecord(Records.generationRequest, message);
      if (!request.roundId || !request.conversationId || !request.shopId || !request.shopperId)
        throw new PermanentError("generation request without round, conversation, shop or shopper");
      const problem = requestProblem(request);
      if (problem) {
        metrics.rounds.inc({ outcome: "invalid" });
        await publish(
          request.conversationId,
          request.roundId,
          encodeRecord(Records.generationResult, {
            roundId: request.roundId,
            conversationId: request.conversationId,
            outcome: { $case: "failed", value: { reason: FailureReason.invalidRequest } },
          }).value,
        );
        throw new PermanentError(`generation request ${request.roundId}: ${problem}`);
      }
      try {
        await handleRequest(request);
      } catch (error) {
        throw asTransient(error, "generation store");
      }
    },
  };
}

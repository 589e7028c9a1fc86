import { hostname } from "node:os";
import type { Logger } from "@taituri/logging";
import { fulfilment } from "@taituri/proto";
import { injectContext, SpanKind, SpanStatusCode, withSpan } from "@taituri/telemetry";
import type { Binary } from "mongodb";
import { retryDelayMs } from "./backoff.ts";
import { type BodyShop, orderPaidBody, orderPaidProblem, type PaidOrder } from "./body.ts";
import type { DesignUrls } from "./design-url.ts";
import type { Endpoints } from "./endpoints.ts";
import type { FulfilmentMetrics } from "./metrics.ts";
import type { PostToShop } from "./shop-client.ts";
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signBody } from "./signature.ts";
import {
  type AttemptClaim,
  type AttemptOutcome,
  type AttemptOutcomeDoc,
  attemptId,
  type DeliveryDoc,
  type DeliveryLedger,
  type DeliveryUpdate,
} from "./store.ts";

/** Posts to shops in flight at once per replica: one slow shop must not hold up the others' orders. */
const MAX_IN_FLIGHT = 16;

export interface DeliverySettings {
  /** ORDERS_WEBHOOK_TIMEOUT_MS. */
  timeoutMs: number;
  /** ORDERS_RETRY_BASE_MS and ORDERS_RETRY_MAX_MS. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** ORDERS_POLL_MS. */
  pollMs: number;
}

export interface DeliveryWorkerDeps {
  ledger: DeliveryLedger;
  endpoints: Endpoints;
  /** The shop's catalog entry, for its language and pickup points. */
  shop: (shopId: string) => BodyShop | undefined;
  designs: DesignUrls;
  post: PostToShop;
  metrics: FulfilmentMetrics;
  logger: Logger;
  settings: DeliverySettings;
  /** Names this replica in its claims. */
  replica?: string;
  now?: () => Date;
  random?: () => number;
}

export interface DeliveryWorker {
  start(): void;
  /** Looks for due deliveries now (the consumer stored one) instead of at the next poll. */
  wake(): void;
  /** Stops looking and waits for the posts in flight (each ends within the timeout). */
  stop(): Promise<void>;
}

/**
 * Posts every pending delivery until its shop answers 2xx. Any replica may run one: attempt n of a
 * delivery is claimed by inserting "<event id>#<n>" (one replica posts it), and its outcome by
 * inserting the same id into the outcomes (one outcome counts), after which the delivery is
 * written from it. A claim without an outcome past its lease means its replica died while posting:
 * the attempt is written off as `abandoned` (a failed attempt) and the delivery moves on. A shop
 * may thus get an order again after a 2xx whose replica died before recording it: it deduplicates
 * on the event id.
 */
export function createDeliveryWorker(deps: DeliveryWorkerDeps): DeliveryWorker {
  const { ledger, metrics, logger, settings } = deps;
  const now = deps.now ?? (() => new Date());
  const random = deps.random ?? Math.random;
  const replica = deps.replica ?? `${hostname()}:${process.pid}`;
  // A post ends within the timeout; twice that, and its replica is not coming back to record it.
  const leaseMs = 2 * settings.timeoutMs;
  const inFlight = new Map<string, Promise<void>>();
  let running = false;
  let looping: Promise<void> = Promise.resolve();
  let again = false;
  let wakeUp: (() => void) | undefined;

  const policy = { baseMs: settings.retryBaseMs, maxMs: settings.retryMaxMs };

  const failedUpdate = (
    attempt: number,
    outcome: AttemptOutcome,
    status: number | undefined,
    at: Date,
  ): DeliveryUpdate => ({
    attempts: attempt,
    nextAttemptAt: new Date(at.getTime() + retryDelayMs(attempt, policy, random)),
    lastAttemptAt: at,
    lastOutcome: outcome,
    ...(status !== undefined ? { lastStatus: status } : {}),
  });

  /** The outcome that counts for attempt n (ours, or the one that got there first), written to the delivery. */
  async function settle(doc: AttemptOutcomeDoc): Promise<{ won: boolean; outcome: AttemptOutcomeDoc }> {
    const recorded = await ledger.recordOutcome(doc);
    const outcome = recorded === "recorded" ? doc : recorded;
    await ledger.apply(doc.deliveryId, doc.attempt, outcome.update);
    return { won: recorded === "recorded", outcome };
  }

  /**
   * Attempt n is another replica's: finish what it left, or write it off if it died. False when it
   * is still under way there.
   */
  async function othersAttempt(delivery: DeliveryDoc, claim: AttemptClaim): Promise<boolean> {
    const n = claim.attempt;
    const known = await ledger.outcome(delivery._id, n);
    if (known) {
      // Its outcome is in, but the replica stopped before writing the delivery: write it.
      await ledger.apply(delivery._id, n, known.update);
      return true;
    }
    const at = now();
    if (at.getTime() - claim.claimedAt.getTime() < leaseMs) return false;
    const { won, outcome } = await settle({
      _id: attemptId(delivery._id, n),
      deliveryId: delivery._id,
      attempt: n,
      outcome: "abandoned",
      at,
      update: failedUpdate(n, "abandoned", undefined, at),
    });
    if (!won) return true;
    metrics.attempts.inc({ outcome: "abandoned" });
    logger.warn(
      {
        orderNumber: delivery.orderNumber,
        attempt: n,
        claimedBy: claim.by,
        nextAttemptAt: outcome.update.nextAttemptAt,
      },
      "order delivery attempt abandoned by its replica; counted as failed",
    );
    return true;
  }

  /** One attempt at the delivery; false when another replica has it under way (nothing changed). */
  async function attempt(delivery: DeliveryDoc): Promise<boolean> {
    const n = delivery.attempts + 1;
    const claimedAt = now();
    const claim = await ledger.claim({
      _id: attemptId(delivery._id, n),
      deliveryId: delivery._id,
      attempt: n,
      claimedAt,
      by: replica,
    });
    if (claim !== "claimed") return othersAttempt(delivery, claim);

    const endpoint = deps.endpoints.forShop(delivery.shopId);
    if (!endpoint) {
      // The configuration lost the shop's endpoint since the order was recorded: the order goes
      // the way of those that never had one, decided like any attempt's outcome.
      const { won } = await settle({
        _id: attemptId(delivery._id, n),
        deliveryId: delivery._id,
        attempt: n,
        outcome: "no_endpoint",
        at: claimedAt,
        update: {
          state: "no_endpoint",
          attempts: n,
          nextAttemptAt: null,
          lastAttemptAt: claimedAt,
          lastOutcome: "no_endpoint",
        },
      });
      if (won) {
        metrics.withoutEndpoint.inc({ shop: delivery.shopId });
        logger.warn(
          { orderNumber: delivery.orderNumber, shopId: delivery.shopId, attempt: n },
          "shop has no orders endpoint any more; order left to `npm run orders`",
        );
      }
      return true;
    }
    const order = readRecord(delivery.record);
    const design = deps.designs.make(order.orderNumber, claimedAt);
    const body = JSON.stringify(orderPaidBody(order, deps.shop(delivery.shopId), design));
    const started = performance.now();
    const result = await withSpan(
      "@taituri/payment",
      "POST order to shop",
      {
        kind: SpanKind.CLIENT,
        // Never the URL (its query may hold the shop's token), the body, the recipient or the address.
        attributes: {
          "http.request.method": "POST",
          "server.address": new URL(endpoint.url).host,
          "order.number": delivery.orderNumber,
          "fulfilment.shop": delivery.shopId,
          "fulfilment.attempt": n,
        },
      },
      async (span) => {
        const answer = await deps.post(
          endpoint.url,
          body,
          {
            "content-type": "application/json",
            "user-agent": "Taituri-Fulfilment/1",
            [EVENT_ID_HEADER]: delivery._id,
            [SIGNATURE_HEADER]: signBody(body, endpoint.secrets, now()),
            // A request carrying a traceparent gets no second span from the fetch instrumentation,
            // whose span would record the full URL.
            ...injectContext(),
          },
          settings.timeoutMs,
        );
        span.setAttribute("fulfilment.outcome", answer.outcome);
        if (answer.status !== undefined) span.setAttribute("http.response.status_code", answer.status);
        if (answer.outcome !== "delivered")
          span.setStatus({ code: SpanStatusCode.ERROR, message: answer.outcome });
        return answer;
      },
    );
    const durationMs = performance.now() - started;
    metrics.attempts.inc({ outcome: result.outcome });
    metrics.attemptSeconds.observe({ outcome: result.outcome }, durationMs / 1000);

    const at = now();
    const update: DeliveryUpdate =
      result.outcome === "delivered"
        ? {
            state: "delivered",
            attempts: n,
            nextAttemptAt: null,
            deliveredAt: at,
            lastAttemptAt: at,
            lastOutcome: "delivered",
            ...(result.status !== undefined ? { lastStatus: result.status } : {}),
          }
        : failedUpdate(n, result.outcome, result.status, at);
    const { won, outcome } = await settle({
      _id: attemptId(delivery._id, n),
      deliveryId: delivery._id,
      attempt: n,
      outcome: result.outcome,
      ...(result.status !== undefined ? { status: result.status } : {}),
      durationMs: Math.round(durationMs),
      at,
      update,
    });
    const fields = {
      orderNumber: delivery.orderNumber,
      attempt: n,
      status: result.status,
      outcome: result.outcome,
    };
    if (!won)
      logger.warn(
        { ...fields, recorded: outcome.outcome },
        "order delivery attempt outlived its lease; the outcome recorded first stands",
      );
    else if (result.outcome === "delivered") logger.info(fields, "order delivered to the shop");
    else logger.warn({ ...fields, nextAttemptAt: update.nextAttemptAt }, "order delivery failed; will retry");
    return true;
  }

  async function pass(): Promise<void> {
    if (inFlight.size >= MAX_IN_FLIGHT) return;
    // The ones in flight are still due (their outcome is not written yet): ask for room beyond them.
    const due = await ledger.due(now(), MAX_IN_FLIGHT + inFlight.size);
    for (const delivery of due) {
      if (inFlight.size >= MAX_IN_FLIGHT) break;
      if (inFlight.has(delivery._id)) continue;
      const work = attempt(delivery).then(
        (progressed) => {
          inFlight.delete(delivery._id);
          // Room for another, and maybe a retry already due: look again now. Not after an attempt
          // under way elsewhere: it is still due, and looking again at once would spin.
          if (progressed) wake();
        },
        (error: unknown) => {
          inFlight.delete(delivery._id);
          // Not woken: the store is likely down, and the next poll is soon enough.
          logger.warn(
            { err: error, orderNumber: delivery.orderNumber },
            "order delivery attempt failed to run; will retry",
          );
        },
      );
      inFlight.set(delivery._id, work);
    }
  }

  async function run(): Promise<void> {
    while (running) {
      again = false;
      try {
        await pass();
      } catch (error) {
        logger.warn({ err: error }, "looking for due order deliveries failed; will retry");
      }
      if (!running) break;
      if (again) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, settings.pollMs);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeUp = undefined;
    }
  }

  function wake(): void {
    again = true;
    wakeUp?.();
  }

  return {
    start() {
      if (running) return;
      running = true;
      looping = run();
    },
    wake,
    async stop() {
      running = false;
      wakeUp?.();
      await looping;
      await Promise.all(inFlight.values());
    },
  };
}

/** The OrderPaid a delivery was recorded from (checked by the consumer before it was recorded). */
export function readRecord(record: Buffer | Binary): PaidOrder {
  const bytes = record instanceof Uint8Array ? record : record.read(0, record.length());
  const order = fulfilment.OrderPaid.decode(bytes);
  const problem = orderPaidProblem(order);
  if (problem) throw new Error(`stored ${problem}`);
  return order as PaidOrder;
}

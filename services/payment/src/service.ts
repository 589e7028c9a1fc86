import { readFile } from "node:fs/promises";
import { ConfigError, httpListenerOptions, oidcVerifierOptions } from "@taituri/config";
import { topicNames } from "@taituri/kafka";
import type { Logger } from "@taituri/logging";
import { ImageStore } from "@taituri/mongo";
import { createVerifier, type Verifier } from "@taituri/oidc";
import {
  connectBackbone,
  listenOps,
  type RunningService,
  returnStarted,
  type StartOptions,
} from "@taituri/service";
import { parse } from "yaml";
import { LocalProvider } from "./adapters/local-provider.ts";
import type { PaymentProvider } from "./adapters/provider.ts";
import { PaymentStore, paymentIndexes } from "./adapters/store.ts";
import { StripeProvider } from "./adapters/stripe-provider.ts";
import { buildPaymentApp, deliverLocalEvent } from "./app.ts";
import type { PaymentConfig } from "./config.ts";
import { createRequestHandler } from "./consumers/requests.ts";
import { parsePriceCatalog } from "./domain/catalog.ts";
import { createOrderPaidHandler } from "./fulfilment/consumer.ts";
import { createDesignUrls } from "./fulfilment/design-url.ts";
import { parseSecretsFile, resolveEndpoints } from "./fulfilment/endpoints.ts";
import { createFulfilmentMetrics } from "./fulfilment/metrics.ts";
import { registerFulfilmentRoutes } from "./fulfilment/routes.ts";
import { postToShop } from "./fulfilment/shop-client.ts";
import { DeliveryStore, fulfilmentIndexes } from "./fulfilment/store.ts";
import { createDeliveryWorker } from "./fulfilment/worker.ts";
import { createMetrics } from "./metrics.ts";
import { createPayments } from "./payments.ts";
import { createRetentionSweep } from "./retention.ts";

export interface PaymentOptions extends StartOptions {
  /** Replaces the OIDC verifier built from the config (tests). */
  verifier?: Verifier;
}

/**
 * Builds and starts the payment service: the payment-requests consumer, the HTTP server on
 * PAYMENT_PORT (provider webhooks, the local checkout page, the internal API, the shops' design
 * links and shipped calls), the ops endpoints on PAYMENT_OPS_PORT, the sweeper, which ends local
 * sessions past their expiry, publishes events a crash left in an order's outbox, finishes refunds
 * a crash or a provider outage left due and forgets orders and deliveries past their retention
 * (retention.ts), and the
 * fulfilment deliverer (the orders consumer and its worker), which posts every paid order to its
 * shop until the shop acknowledges it (docs/orders.md).
 * Endpoints: `http` (the public base), `webhook`, `ops`.
 */
export async function startPaymentService(
  config: PaymentConfig,
  logger: Logger,
  options: PaymentOptions = {},
): Promise<RunningService> {
  const catalog = parsePriceCatalog(parse(await readFile(config.PAYMENT_CATALOG_FILE, "utf8")));
  // Before any connection: a shop whose orders could not be signed refuses the start.
  const { endpoints, warnings } = resolveEndpoints(catalog.shops, {
    defaultUrl: config.ORDERS_WEBHOOK_URL,
    defaultSecret: config.ORDERS_WEBHOOK_SECRET,
    secrets: config.ORDERS_WEBHOOK_SECRETS_FILE ? await readSecrets(config.ORDERS_WEBHOOK_SECRETS_FILE) : {},
    local: config.DEPLOYMENT_ENVIRONMENT === "local",
  });
  for (const warning of warnings) logger.warn(warning);
  // Kafka and MongoDB are reached in the background: the server listens at once (its /readyz says
  // what it waits for), the consumers, the deliverer and the sweeper start once both are there.
  const backbone = await connectBackbone("payment", config, logger, {
    indexes: [...paymentIndexes, ...fulfilmentIndexes],
  });
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const store = new PaymentStore(backbone.mongo.db);
  const metrics = createMetrics(backbone.registry, () => store.countByState());

  // Known once the server listens when PAYMENT_PUBLIC_URL is unset (port 0 in tests).
  let listening = "";
  const publicUrl = () => config.PAYMENT_PUBLIC_URL ?? listening;
  const local =
    config.PAYMENT_PROVIDER === "local"
      ? new LocalProvider({
          secret: config.PAYMENT_LOCAL_WEBHOOK_SECRET,
          publicUrl,
          toleranceSeconds: config.PAYMENT_WEBHOOK_TOLERANCE_S,
        })
      : undefined;
  const provider: PaymentProvider =
    local ??
    new StripeProvider({
      secretKey: config.STRIPE_SECRET_KEY ?? "",
      webhookSecret: config.STRIPE_WEBHOOK_SECRET ?? "",
      publicUrl,
      toleranceSeconds: config.PAYMENT_WEBHOOK_TOLERANCE_S,
      timeoutMs: config.PAYMENT_PROVIDER_TIMEOUT_MS,
      ...(config.STRIPE_API_URL ? { apiUrl: config.STRIPE_API_URL } : {}),
    });

  const payments = createPayments({
    store,
    provider,
    publisher: backbone.kafka.producer,
    topics,
    catalog,
    sessionTtlMs: config.PAYMENT_SESSION_TTL_MS,
    metrics,
    logger,
  });
  const images = new ImageStore(backbone.mongo.db);
  const listener = httpListenerOptions(config);
  const app = buildPaymentApp({
    listener,
    payments,
    provider,
    ...(local ? { local } : {}),
    store,
    images,
    verifier:
      options.verifier ??
      createVerifier({
        issuer: config.OIDC_ISSUER_URL,
        audience: config.PAYMENT_AUDIENCE,
        ...oidcVerifierOptions(config),
      }),
    access: {
      callers: config.PAYMENT_INTERNAL_CALLERS,
      adminScope: config.PAYMENT_ADMIN_SCOPE,
      adminSubjects: config.PAYMENT_ADMIN_SUBJECTS,
    },
    metrics,
    logger,
  });

  const deliveries = new DeliveryStore(backbone.mongo.db);
  const fulfilmentMetrics = createFulfilmentMetrics(backbone.registry, () => deliveries.pendingStats());
  const designs = createDesignUrls({
    secret: config.ORDERS_IMAGE_URL_SECRET,
    ttlSeconds: config.ORDERS_IMAGE_URL_TTL_S,
    publicUrl,
  });
  registerFulfilmentRoutes(app, {
    orderByNumber: (number) => store.byNumber(number),
    images,
    markShipped: (number, trackingUrl) => payments.markShipped(number, trackingUrl),
    designs,
    endpoints,
    metrics: fulfilmentMetrics,
    logger,
  });
  const shops = new Map(catalog.shops.map((shop) => [shop.id, shop]));
  const worker = createDeliveryWorker({
    ledger: deliveries,
    endpoints,
    shop: (id) => shops.get(id),
    designs,
    post: postToShop,
    metrics: fulfilmentMetrics,
    logger,
    settings: {
      timeoutMs: config.ORDERS_WEBHOOK_TIMEOUT_MS,
      retryBaseMs: config.ORDERS_RETRY_BASE_MS,
      retryMaxMs: config.ORDERS_RETRY_MAX_MS,
      pollMs: config.ORDERS_POLL_MS,
    },
  });

  const ops = await listenOps({
    registry: backbone.registry,
    checks: backbone.checks,
    port: config.PAYMENT_OPS_PORT,
    host: config.PAYMENT_HOST,
    listener,
  });
  const url = await app.listen({ port: config.PAYMENT_PORT, host: config.PAYMENT_HOST });
  listening = url;
  const work = backbone.whenUp("consumers", ["kafka", "mongodb"], async () => {
    const consumer = await backbone.consume({
      group: "payment",
      topics: [topics.paymentRequests],
      partitionsConsumedConcurrently: config.CONSUMER_CONCURRENCY,
      handle: createRequestHandler({ payments, topics }),
    });
    // After listening: the design links the worker makes need the public base URL.
    worker.start();
    const orders = await backbone
      .consume({
        group: "payment.fulfilment",
        topics: [topics.orders],
        handle: createOrderPaidHandler({
          ledger: deliveries,
          endpoints,
          topics,
          metrics: fulfilmentMetrics,
          logger,
          wake: () => worker.wake(),
        }),
      })
      .catch(async (error: unknown) => {
        // Retried whole: the requests consumer is stopped, not left as a second member (the
        // worker's start is a no-op the next time).
        await consumer.stop();
        throw error;
      });

    // Any replica may sweep: expiring a session is a signed event through the webhook path (the
    // event index and the version claim make a second replica's copy a no-op), and a refund is
    // asked for under the order's refund key and completed by one claimed write.
    const sweep = async () => {
      await payments.relayStale(config.PAYMENT_OUTBOX_GRACE_MS);
      // Due for longer than the outbox grace: the writer that claimed it has probably died.
      await payments.refundDueRetries(config.PAYMENT_OUTBOX_GRACE_MS);
      if (!local) return;
      for (const order of await payments.dueForExpiry()) {
        if (!order.session) continue;
        const status = await deliverLocalEvent(app, local, "checkout.session.expired", {
          id: order.session.id,
          orderNumber: order.number,
        });
        if (status !== 200)
          logger.warn(
            { orderNumber: order.number, status },
            "expiring a checkout session failed; will retry",
          );
      }
    };
    // The same loop forgets orders and deliveries past PAYMENT_RETENTION_DAYS, at most every
    // PAYMENT_RETENTION_SWEEP_MS and a batch at a time, so it never holds up an expiry or a relay long.
    const retention = createRetentionSweep({
      orders: store,
      deliveries,
      metrics,
      logger,
      days: config.PAYMENT_RETENTION_DAYS,
      everyMs: config.PAYMENT_RETENTION_SWEEP_MS,
    });
    let sweeping: Promise<unknown> = Promise.resolve();
    const sweeper = setInterval(() => {
      sweeping = sweeping.then(() =>
        sweep()
          .catch((error: unknown) => logger.warn({ err: error }, "payment sweep failed; will retry"))
          .then(retention)
          .catch((error: unknown) => logger.warn({ err: error }, "retention sweep failed; will retry")),
      );
    }, config.PAYMENT_SWEEP_MS);

    return async () => {
      clearInterval(sweeper);
      await sweeping;
      await consumer.stop();
      await orders.stop();
      // Posts in flight end within ORDERS_WEBHOOK_TIMEOUT_MS; their outcomes need MongoDB.
      await worker.stop();
    };
  });

  return returnStarted(
    {
      endpoints: { http: publicUrl(), webhook: `${url}/payments/webhooks/${provider.name}`, ops: ops.url },
      registry: backbone.registry,
      async stop() {
        // Out of service first; the ops listener closes last, answering /readyz 503 while work drains.
        ops.drain();
        await app.close();
        await work.stop();
        await ops.close();
        await backbone.close();
      },
    },
    backbone.started(),
    options,
  );
}

/** ORDERS_WEBHOOK_SECRETS_FILE, read; a missing or unreadable file refuses the start like a bad setting. */
async function readSecrets(path: string): Promise<Record<string, string[]>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError([
      `ORDERS_WEBHOOK_SECRETS_FILE: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    ]);
  }
  return parseSecretsFile(text, path);
}

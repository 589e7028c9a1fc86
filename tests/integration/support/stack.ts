import { loadConversationConfig } from "@taituri/conversation-service/config";
import { startConversationService } from "@taituri/conversation-service/service";
import { freePort, type Infra } from "@taituri/devenv";
import { loadGenerationConfig } from "@taituri/generation-service/config";
import { startGenerationService } from "@taituri/generation-service/service";
import { loadIngressConfig } from "@taituri/ingress-service/config";
import { startIngressService } from "@taituri/ingress-service/service";
import type { Logger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { loadPaymentConfig } from "@taituri/payment-service/config";
import { startPaymentService } from "@taituri/payment-service/service";
import type { RunningService } from "@taituri/service";
import type { FakeGraphApi } from "@taituri/testing/harness";
import { startTestLimiter } from "./generation.ts";

export interface StackOptions {
  /** Names this run's topics (`<id>.`), database (`<id>` with `_`) and limiter keys. */
  id: string;
  infra: Infra;
  /** Where the dispatcher finds the Graph API: a fake, or the WhatsApp simulator (its `graphUrl`). */
  graph: Pick<FakeGraphApi, "url">;
  logger: Logger;
  /** The WhatsApp app secret the shoppers sign with. */
  secret: string;
  /** The real generation service and limiter, with a local OIDC issuer; else someone else answers rounds. */
  generation?: boolean;
  /** The real payment service (local checkout); else someone else answers payment requests. */
  payment?: boolean;
  /** Extra settings of the conversation service. */
  conversation?: Record<string, string>;
  /** Extra settings of the generation service (e.g. its image provider). */
  generationSettings?: Record<string, string>;
  /** Extra settings of ingress (e.g. a port chosen beforehand, for a client that must know it first). */
  ingressSettings?: Record<string, string>;
  /** Extra settings of the payment service (e.g. the shop's orders endpoint). */
  paymentSettings?: Record<string, string>;
}

export interface Stack {
  prefix: string;
  dbName: string;
  /**
   * The servers' settings every service of this stack was given (a CLI run against it needs them),
   * without Kafka's: those are each service's own (`infra.kafka.settings(service)`).
   */
  env: Record<string, string>;
  ingress: RunningService;
  payment?: RunningService;
  /** Every service started, in start order. */
  services: RunningService[];
  stop(): Promise<void>;
}

/** What the stack's local payment provider signs its events with: a test can sign one too. */
export const PAYMENT_LOCAL_SECRET = "payment-journey-local-secret";

/**
 * The services a journey test needs, in this process, on the test's servers: ingress (webhook and
 * dispatcher, to the fake Graph API) and the conversation always; the limiter and generation, and
 * payment, when asked. Started from the back of the journey to its front, stopped the other way.
 */
export async function startStack(options: StackOptions): Promise<Stack> {
  const { infra, logger } = options;
  const prefix = `${options.id}.`;
  const dbName = options.id.replace(/-/g, "_");
  // Each service logs in to Kafka as itself (infra.kafka.settings), allowed only what
  // packages/kafka/data/access.json gives it under this stack's prefix.
  await infra.kafka.authorize(prefix);
  const kafka = infra.kafka.settings;
  const env = {
    MONGO_URL: infra.mongo.url,
    MONGO_DB: dbName,
    REDIS_URL: infra.redis.url,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_PARTITIONS: "3",
  };
  const services: RunningService[] = [];
  let issuer: LocalIssuer | undefined;
  if (options.generation) {
    const oidcSecret = `${options.id}-oidc`;
    issuer = await startLocalIssuer({ clients: { generation: oidcSecret } });
    const limiter = await startTestLimiter({
      redisUrl: infra.redis.url,
      issuerUrl: issuer.url,
      keyPrefix: options.id,
      logger,
    });
    services.push(limiter);
    services.push(
      await startGenerationService(
        loadGenerationConfig({
          ...env,
          ...kafka("generation"),
          GENERATION_PORT: "0",
          LIMITER_URL: limiter.endpoints.grpc,
          OIDC_ISSUER_URL: issuer.url,
          OIDC_CLIENT_SECRET: oidcSecret,
          ...options.generationSettings,
        }),
        logger,
      ),
    );
  }
  services.push(
    await startConversationService(
      loadConversationConfig({
        ...env,
        ...kafka("conversation"),
        CONVERSATION_PORT: "0",
        ...options.conversation,
      }),
      logger,
    ),
  );
  let payment: RunningService | undefined;
  if (options.payment) {
    // The checkout links the shopper opens must name the port the service really listens on.
    const port = await freePort();
    payment = await startPaymentService(
      loadPaymentConfig({
        ...env,
        ...kafka("payment"),
        PAYMENT_PORT: String(port),
        PAYMENT_OPS_PORT: "0",
        PAYMENT_PUBLIC_URL: `http://127.0.0.1:${port}`,
        PAYMENT_SWEEP_MS: "200",
        PAYMENT_LOCAL_WEBHOOK_SECRET: PAYMENT_LOCAL_SECRET,
        ...options.paymentSettings,
      }),
      logger,
    );
    services.push(payment);
  }
  const ingress = await startIngressService(
    loadIngressConfig({
      ...env,
      ...kafka("ingress"),
      INGRESS_PORT: "0",
      INGRESS_OPS_PORT: "0",
      WHATSAPP_APP_SECRET: options.secret,
      WHATSAPP_VERIFY_TOKEN: "v",
      WHATSAPP_ACCESS_TOKEN: "t",
      WHATSAPP_API_URL: options.graph.url,
      ...options.ingressSettings,
    }),
    logger,
  );
  services.push(ingress);
  return {
    prefix,
    dbName,
    env,
    ingress,
    ...(payment ? { payment } : {}),
    services: [...services],
    async stop() {
      for (const service of [...services].reverse()) await service.stop();
      await issuer?.close();
    },
  };
}

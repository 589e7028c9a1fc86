import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { freePort, type Infra, startInfra } from "@taituri/devenv";
import { ensureGoTool } from "@taituri/devenv/tools";
import { createKafka, EventProducer, Header, Records, type TopicNames, topicNames } from "@taituri/kafka";
import { createLogger, type Logger } from "@taituri/logging";
import { type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import { loadPaymentConfig } from "@taituri/payment-service/config";
import { LocalProvider } from "@taituri/payment-service/local-provider";
import { startPaymentService } from "@taituri/payment-service/service";
import { payment } from "@taituri/proto";
import type { RunningService } from "@taituri/service";
import { eventually } from "@taituri/testing/harness";
import type { Consumer, Kafka } from "kafkajs";
import { type Db, MongoClient } from "mongodb";
import Stripe from "stripe";

/**
 * What the payment integration tests share (payment.test.ts, payment-cancel.test.ts,
 * payment-privacy.test.ts): the real servers, payment services with their own topics and
 * databases, stripe-mock, a recording proxy in front of it, and the requests and webhooks the
 * conversation and the providers send.
 */
export const LOCAL_SECRET = "payment-it-local-webhook-secret";
/** The internal API's caller in these tests: PAYMENT_INTERNAL_CALLERS' default. */
export const INTERNAL_CALLER = "payment-admin";
export const STRIPE_WEBHOOK_SECRET = "whsec_payment_it";
const STRIPE_MOCK = { name: "stripe-mock", module: "github.com/stripe/stripe-mock", version: "v0.203.0" };

export const logger: Logger = createLogger({ service: "it", level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** One payment service with its own topics and database, and what it publishes. */
export class PaymentInstance {
  readonly events: payment.PaymentEvent[] = [];
  readonly service: RunningService;
  readonly url: string;
  readonly topics: TopicNames;
  readonly db: Db;
  readonly producer: EventProducer;
  consumer?: Consumer;

  constructor(parts: {
    service: RunningService;
    url: string;
    topics: TopicNames;
    db: Db;
    producer: EventProducer;
  }) {
    this.service = parts.service;
    this.url = parts.url;
    this.topics = parts.topics;
    this.db = parts.db;
    this.producer = parts.producer;
  }

  /** A "buy", as the conversation sends it (`typed`: with its content type, as it does now). */
  async buy(r: payment.PaymentRequest, typed = true): Promise<void> {
    await this.producer.send(this.topics.paymentRequests, [
      {
        key: r.conversationId,
        value: Buffer.from(payment.PaymentRequest.encode(r).finish()),
        ...(typed ? { headers: { [Header.type]: Records.paymentRequest.contentType } } : {}),
      },
    ]);
  }

  async cancel(r: payment.PaymentRequest, reason: payment.CancelReason): Promise<void> {
    await this.producer.send(this.topics.paymentRequests, [
      {
        key: r.conversationId,
        value: Buffer.from(
          payment.CancelOrder.encode({
            orderId: r.orderId,
            conversationId: r.conversationId,
            reason,
          }).finish(),
        ),
        headers: { [Header.type]: Records.cancelOrder.contentType },
      },
    ]);
  }

  eventsOf = (orderId: string) => this.events.filter((e) => e.orderId === orderId);
  outcomes = (orderId: string) => this.eventsOf(orderId).map((e) => e.outcome?.$case);
  links = (orderId: string) =>
    this.eventsOf(orderId).flatMap((e) => (e.outcome?.$case === "linkCreated" ? [e.outcome.value.url] : []));
  // biome-ignore lint/suspicious/noExplicitAny: the order document as stored, read by tests.
  order = (orderId: string): Promise<any> =>
    this.db.collection("payment_orders").findOne({ _id: orderId as never });
  sessionsOf = (orderId: string) => this.db.collection("payment_sessions").find({ orderId }).toArray();

  async linkFor(orderId: string, n = 1): Promise<string> {
    const got = await eventually(
      `link ${n} for ${orderId}`,
      () => this.links(orderId).length >= n && this.links(orderId),
    );
    return got[n - 1] ?? "";
  }

  /** The order once it is in `state`. */
  async orderIn(orderId: string, state: string) {
    return eventually(`order ${orderId} ${state}`, async () => {
      const doc = await this.order(orderId);
      return doc?.state === state && doc;
    });
  }

  async deliver(body: string, signature: string, provider = "local"): Promise<number> {
    const header = provider === "local" ? "taituri-signature" : "stripe-signature";
    const response = await fetch(`${this.url}/payments/webhooks/${provider}`, {
      method: "POST",
      headers: { "content-type": "application/json", [header]: signature },
      body,
    });
    await response.arrayBuffer();
    return response.status;
  }

  /** The value of one sample of /metrics, on the ops port (0 when absent). */
  async metric(name: string, labels: Record<string, string>): Promise<number> {
    const text = await (await fetch(`${this.service.endpoints.ops}/metrics`)).text();
    const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && wanted.every((w) => l.includes(w)));
    return line ? Number(line.split(" ").pop()) : 0;
  }
}

export interface PaymentWorld {
  infra: Infra;
  issuer: LocalIssuer;
  mongo: MongoClient;
  kafka: Kafka;
  producer: EventProducer;
  stripeMockUrl: string;
  start(name: string, env?: Record<string, string>): Promise<PaymentInstance>;
  /** A payment service on the Stripe provider, talking to `apiUrl` (stripe-mock by default). */
  startStripe(name: string, apiUrl?: string): Promise<PaymentInstance>;
  /**
   * `authorization` headers for the internal API: its default caller, with the admin scope (refunds)
   * when `admin`; another `sub` to be refused.
   */
  internalAuth(options?: { admin?: boolean; sub?: string }): Promise<{ authorization: string }>;
  stop(): Promise<void>;
}

/** The servers, stripe-mock (built once from the Go module proxy) and an OIDC issuer. */
export async function startPaymentWorld(id: string): Promise<PaymentWorld> {
  const run = `${id}-${randomUUID().slice(0, 8)}`;
  const infra = await startInfra();
  const issuer = await startLocalIssuer();
  const mongo = new MongoClient(infra.mongo.url);
  // The tests play the conversation service (requests in, events out): the broker's super user.
  const kafka = createKafka({ ...infra.kafka.client, clientId: `payment-it-${id}`, logger });
  const producer = new EventProducer(kafka);
  await producer.connect();
  const stripeMock = await startStripeMock();
  const instances: PaymentInstance[] = [];
  const world: PaymentWorld = {
    infra,
    issuer,
    mongo,
    kafka,
    producer,
    stripeMockUrl: stripeMock.url,
    async start(name, env = {}) {
      const prefix = `payment-${name}-${run}.`;
      const dbName = `payment_${name}_${run}`.replace(/-/g, "_");
      const port = await freePort();
      // The service logs in to Kafka as itself, allowed only its topics and groups under `prefix`.
      await infra.kafka.authorize(prefix);
      const service = await startPaymentService(
        loadPaymentConfig({
          ...infra.kafka.settings("payment"),
          MONGO_URL: infra.mongo.url,
          MONGO_DB: dbName,
          KAFKA_TOPIC_PREFIX: prefix,
          KAFKA_PARTITIONS: "2",
          PAYMENT_PORT: String(port),
          PAYMENT_OPS_PORT: "0",
          PAYMENT_PUBLIC_URL: `http://127.0.0.1:${port}`,
          PAYMENT_LOCAL_WEBHOOK_SECRET: LOCAL_SECRET,
          PAYMENT_SWEEP_MS: "200",
          OIDC_ISSUER_URL: issuer.url,
          ...env,
        }),
        logger,
      );
      const instance = new PaymentInstance({
        service,
        url: `http://127.0.0.1:${port}`,
        topics: topicNames(prefix),
        db: mongo.db(dbName),
        producer,
      });
      const consumer = kafka.consumer({ groupId: `it-${name}-${run}`, maxWaitTimeInMs: 100 });
      await consumer.connect();
      await consumer.subscribe({ topic: instance.topics.paymentEvents, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          instance.events.push(payment.PaymentEvent.decode(message.value ?? Buffer.alloc(0)));
        },
      });
      instance.consumer = consumer;
      instances.push(instance);
      return instance;
    },
    async internalAuth({ admin = false, sub = INTERNAL_CALLER } = {}) {
      const token = await issuer.sign({
        sub,
        aud: "payment",
        ...(admin ? { extra: { scope: "payment.admin" } } : {}),
      });
      return { authorization: `Bearer ${token}` };
    },
    startStripe(name, apiUrl = stripeMock.url) {
      return world.start(name, {
        PAYMENT_PROVIDER: "stripe",
        STRIPE_SECRET_KEY: "sk_test_123",
        STRIPE_WEBHOOK_SECRET,
        STRIPE_API_URL: apiUrl,
      });
    },
    async stop() {
      for (const i of instances) {
        await i.consumer?.disconnect();
        await i.service.stop();
      }
      stripeMock.process.kill();
      await producer.disconnect();
      await mongo.close();
      await issuer.close();
      await infra.stop();
    },
  };
  return world;
}

async function startStripeMock(): Promise<{ url: string; process: ChildProcess }> {
  const binary = await ensureGoTool(STRIPE_MOCK);
  const port = await freePort();
  // Its HTTPS listener too, or stripe-mock opens it on the fixed [::]:12112 and a second copy (test
  // files run in parallel on a bigger machine) fails to start.
  const https = await freePort();
  const child = spawn(binary, ["-http-addr", `127.0.0.1:${port}`, "-https-addr", `127.0.0.1:${https}`], {
    stdio: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  // It loads Stripe's whole OpenAPI spec first: seconds of CPU, more on a busy machine.
  try {
    await eventually(
      "stripe-mock to answer",
      async () => (await fetch(`${url}/v1/charges`)).status > 0,
      60_000,
    );
  } catch (error) {
    child.kill();
    throw error;
  }
  return { url, process: child };
}

/** A PaymentRequest as the conversation builds it: order `n` of the conversation. */
export function paymentRequest(
  conversationId: string,
  n = 1,
  over: Partial<payment.PaymentRequest> = {},
): payment.PaymentRequest {
  return {
    orderId: `${conversationId}/o${n}`,
    conversationId,
    shopId: "demo-shop",
    designId: `d${n}`,
    imageId: `${conversationId}/o${n}/image`,
    productId: "mug-11oz",
    amount: 1990,
    currency: "EUR",
    recipient: "Rosa",
    delivery: DELIVERY,
    ...over,
  };
}

/** Where the gifts of these tests go: an address the demo shop delivers to, as the conversation sends it. */
export const DELIVERY: payment.Delivery = {
  method: {
    $case: "address",
    value: {
      name: "Rosa Test",
      line1: "Calle Mayor 1",
      line2: "",
      city: "Madrid",
      postcode: "28013",
      country: "ES",
    },
  },
};

export const sessionIdOf = (url: string) => url.split("/checkout/")[1] ?? "";

export const localProvider = (url: string) =>
  new LocalProvider({ secret: LOCAL_SECRET, publicUrl: url, toleranceSeconds: 300 });

/** A Stripe event for a Checkout Session, signed with the test webhook secret as Stripe signs it. */
export function stripeEvent(
  type: string,
  object: Record<string, unknown>,
  secret = STRIPE_WEBHOOK_SECRET,
  timestamp = Math.floor(Date.now() / 1000),
): { body: string; signature: string } {
  const body = JSON.stringify({
    id: `evt_${randomUUID().replace(/-/g, "")}`,
    object: "event",
    type,
    data: { object: { object: "checkout.session", ...object } },
  });
  const signature = new Stripe("sk_test_123").webhooks.generateTestHeaderString({
    payload: body,
    secret,
    timestamp,
  });
  return { body, signature };
}

/** One request as it went over the wire. */
export interface WireRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A local-provider payment service and a Stripe one whose calls pass a recording proxy. */
export interface LocalAndStripe {
  world: PaymentWorld;
  local: PaymentInstance;
  stripe: PaymentInstance;
  proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
  stop(): Promise<void>;
}

export async function startLocalAndStripe(id: string): Promise<LocalAndStripe> {
  const world = await startPaymentWorld(id);
  const proxy = await startRecordingProxy(world.stripeMockUrl);
  const local = await world.start(`${id}-local`);
  const stripe = await world.startStripe(`${id}-stripe`, proxy.url);
  return {
    world,
    local,
    stripe,
    proxy,
    async stop() {
      await world.stop();
      await proxy.close();
    },
  };
}

/**
 * An HTTP proxy that records every request before passing it on: put in front of stripe-mock, it
 * shows exactly what this service sends to Stripe (URL, query, headers, body).
 */
export async function startRecordingProxy(
  target: string,
): Promise<{ url: string; requests: WireRequest[]; close(): Promise<void> }> {
  const upstream = new URL(target);
  const requests: WireRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: body.toString(),
      });
      const forward = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on("error", () => res.writeHead(502).end());
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

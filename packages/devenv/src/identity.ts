import { createHmac, randomBytes } from "node:crypto";
import { KAFKA_SERVICES } from "@taituri/kafka/access";
import { type IssuerClient, type LocalIssuer, startLocalIssuer } from "@taituri/oidc";
import type { KafkaOAuth } from "./kafka.ts";

/** The audience of the tokens the services present to Kafka. */
export const KAFKA_AUDIENCE = "kafka";
const ADMIN = "taituri-admin";

/**
 * What a process needs to act on a local secured broker: where it is, which issuer it trusts, and
 * the run's secret from which every credential is derived. Handed to child processes as
 * TAITURI_KAFKA_AUTH, so that their startInfra() uses the same broker with the same credentials.
 */
export interface LocalKafkaAuth {
  brokers: string[];
  issuerUrl: string;
  secret: string;
}

/** A credential of this run: an HMAC of its label under the run's secret, so nothing is stored. */
export function derive(secret: string, label: string): string {
  return createHmac("sha256", secret).update(label).digest("base64url");
}

/** The client secret of a service's principal on the run's issuer. */
export const clientSecretOf = (auth: Pick<LocalKafkaAuth, "secret">, clientId: string) =>
  derive(auth.secret, `client:${clientId}`);

/** The broker's settings for this run: the issuer it trusts, and its super user. */
export function brokerOAuth(auth: Omit<LocalKafkaAuth, "brokers">): KafkaOAuth {
  return {
    issuerUrl: auth.issuerUrl,
    jwksUrl: `${auth.issuerUrl}/jwks`,
    audience: KAFKA_AUDIENCE,
    admin: { username: ADMIN, password: derive(auth.secret, "kafka-admin") },
  };
}

export interface LocalIdentity {
  issuer: LocalIssuer;
  secret: string;
}

/**
 * The local stand-in for a cluster's service-account issuer: an OIDC issuer whose clients are the
 * services (each with a secret derived from the run's secret) and whatever `clients` adds (the
 * operators' clients of `npm start`). Kafka trusts it; so do the limiter and payment under npm start.
 */
export async function startLocalIdentity(
  options: { port?: number; clients?: Record<string, string | IssuerClient> } = {},
): Promise<LocalIdentity> {
  const secret = randomBytes(32).toString("base64url");
  const extra = options.clients ?? {};
  const services = new Set<string>(KAFKA_SERVICES);
  const issuer = await startLocalIssuer({
    ...(options.port !== undefined ? { port: options.port } : {}),
    clients: (id) => {
      if (Object.hasOwn(extra, id)) return extra[id];
      return services.has(id) ? clientSecretOf({ secret }, id) : undefined;
    },
  });
  return { issuer, secret };
}

/** TAITURI_KAFKA_AUTH's value, and back; undefined when unset or not about these brokers. */
export function encodeKafkaAuth(auth: LocalKafkaAuth): string {
  return JSON.stringify(auth);
}

export function decodeKafkaAuth(value: string | undefined, brokers: string[]): LocalKafkaAuth | undefined {
  if (!value) return undefined;
  const auth = JSON.parse(value) as LocalKafkaAuth;
  if (typeof auth.issuerUrl !== "string" || typeof auth.secret !== "string" || !Array.isArray(auth.brokers))
    throw new Error("TAITURI_KAFKA_AUTH is not what startInfra wrote");
  // A test that brings its own broker keeps the variable of the shared one: it is not about that broker.
  return auth.brokers.join(",") === brokers.join(",") ? auth : undefined;
}

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { ConnectionOptions } from "node:tls";
import type { SASLOptions } from "kafkajs";

/**
 * The Kafka connection settings of packages/config's baseSchema (its comments say what each
 * means). loadConfig has already checked that they fit together and that the files are readable.
 */
export interface KafkaSecuritySettings {
  KAFKA_SSL: boolean;
  KAFKA_SSL_CA_FILE?: string | undefined;
  KAFKA_SSL_CERT_FILE?: string | undefined;
  KAFKA_SSL_KEY_FILE?: string | undefined;
  KAFKA_SSL_REJECT_UNAUTHORIZED: boolean;
  KAFKA_SASL_MECHANISM?: "plain" | "scram-sha-256" | "scram-sha-512" | "oauthbearer" | undefined;
  KAFKA_SASL_USERNAME?: string | undefined;
  KAFKA_SASL_PASSWORD?: string | undefined;
  KAFKA_SASL_PASSWORD_FILE?: string | undefined;
  KAFKA_OAUTH_TOKEN_FILE?: string | undefined;
  KAFKA_OAUTH_TOKEN_URL?: string | undefined;
  KAFKA_OAUTH_CLIENT_ID?: string | undefined;
  KAFKA_OAUTH_CLIENT_SECRET?: string | undefined;
  KAFKA_OAUTH_CLIENT_SECRET_FILE?: string | undefined;
  KAFKA_OAUTH_AUDIENCE?: string | undefined;
  KAFKA_OAUTH_SCOPE?: string | undefined;
}

/** kafkajs's `ssl` and `sasl` options. */
export interface KafkaSecurity {
  ssl?: ConnectionOptions;
  sasl?: SASLOptions;
}

/** A secret given as a value or as a file: the file is read now, at start-up, and trimmed. */
function secret(value: string | undefined, file: string | undefined, name: string): string {
  if (value !== undefined) return value;
  if (file !== undefined) return readFileSync(file, "utf8").trim();
  throw new Error(`${name} or ${name}_FILE is required`);
}

/**
 * kafkajs's `ssl` and `sasl` options from the settings. Files are read here, once, except the
 * OAuth token file: the platform rewrites it before the token expires, so each new connection (and
 * kafkajs opens one per broker, and again after a broker drops it) reads it again.
 */
export function kafkaSecurity(settings: KafkaSecuritySettings): KafkaSecurity {
  const security: KafkaSecurity = {};
  if (settings.KAFKA_SSL) {
    const ssl: ConnectionOptions = { rejectUnauthorized: settings.KAFKA_SSL_REJECT_UNAUTHORIZED };
    if (settings.KAFKA_SSL_CA_FILE) ssl.ca = readFileSync(settings.KAFKA_SSL_CA_FILE, "utf8");
    if (settings.KAFKA_SSL_CERT_FILE) ssl.cert = readFileSync(settings.KAFKA_SSL_CERT_FILE, "utf8");
    if (settings.KAFKA_SSL_KEY_FILE) ssl.key = readFileSync(settings.KAFKA_SSL_KEY_FILE, "utf8");
    security.ssl = ssl;
  }
  const mechanism = settings.KAFKA_SASL_MECHANISM;
  if (mechanism === undefined) return security;
  if (mechanism !== "oauthbearer") {
    const username = settings.KAFKA_SASL_USERNAME;
    if (username === undefined) throw new Error(`KAFKA_SASL_USERNAME is required by ${mechanism}`);
    const password = secret(
      settings.KAFKA_SASL_PASSWORD,
      settings.KAFKA_SASL_PASSWORD_FILE,
      "KAFKA_SASL_PASSWORD",
    );
    security.sasl = { mechanism, username, password };
    return security;
  }
  const token = oauthToken(settings);
  security.sasl = { mechanism, oauthBearerProvider: async () => ({ value: await token() }) };
  return security;
}

function oauthToken(settings: KafkaSecuritySettings): () => Promise<string> {
  const file = settings.KAFKA_OAUTH_TOKEN_FILE;
  if (file !== undefined) {
    // Read once now too, so a token that is not mounted stops the start, not the first login.
    readFileSync(file);
    return async () => (await readFile(file, "utf8")).trim();
  }
  const { KAFKA_OAUTH_TOKEN_URL: tokenUrl, KAFKA_OAUTH_CLIENT_ID: clientId } = settings;
  const audience = settings.KAFKA_OAUTH_AUDIENCE;
  if (!tokenUrl || !clientId || !audience)
    throw new Error(
      "oauthbearer needs KAFKA_OAUTH_TOKEN_FILE, or KAFKA_OAUTH_TOKEN_URL, KAFKA_OAUTH_CLIENT_ID and KAFKA_OAUTH_AUDIENCE",
    );
  const options = {
    tokenUrl,
    clientId,
    clientSecret: secret(
      settings.KAFKA_OAUTH_CLIENT_SECRET,
      settings.KAFKA_OAUTH_CLIENT_SECRET_FILE,
      "KAFKA_OAUTH_CLIENT_SECRET",
    ),
    audience,
    ...(settings.KAFKA_OAUTH_SCOPE ? { scope: settings.KAFKA_OAUTH_SCOPE } : {}),
  };
  // The OIDC client is loaded at the first login, not with this module: @taituri/kafka is imported
  // before telemetry starts, and the client would load node:http ahead of its instrumentation.
  let source: Promise<() => Promise<string>> | undefined;
  return async () => {
    source ??= import("@taituri/oidc").then(({ createTokenSource }) => createTokenSource(options));
    return (await source)();
  };
}

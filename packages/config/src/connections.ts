import { accessSync, constants, statSync } from "node:fs";

type Settings = Record<string, unknown>;

const SASL_PASSWORD_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"];
const SASL_USER_SETTINGS = ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE"];
const OAUTH_GRANT_SETTINGS = [
  "KAFKA_OAUTH_TOKEN_URL",
  "KAFKA_OAUTH_CLIENT_ID",
  "KAFKA_OAUTH_CLIENT_SECRET",
  "KAFKA_OAUTH_CLIENT_SECRET_FILE",
  "KAFKA_OAUTH_AUDIENCE",
  "KAFKA_OAUTH_SCOPE",
];
const OAUTH_SETTINGS = ["KAFKA_OAUTH_TOKEN_FILE", ...OAUTH_GRANT_SETTINGS];
const FILES = [
  "KAFKA_SSL_CA_FILE",
  "KAFKA_SSL_CERT_FILE",
  "KAFKA_SSL_KEY_FILE",
  "KAFKA_SASL_PASSWORD_FILE",
  "KAFKA_OAUTH_TOKEN_FILE",
  "KAFKA_OAUTH_CLIENT_SECRET_FILE",
  "REDIS_PASSWORD_FILE",
  "REDIS_TLS_CA_FILE",
];

/**
 * The Kafka and Redis connection settings that only make sense together: a SASL mechanism needs its
 * credentials, credentials need a mechanism (set alone they would be silently unused, and the
 * service would connect without them), a value and its `_FILE` exclude each other, and each file
 * must be readable now, not at the first reconnect. One line per problem, naming the variable; none
 * for a schema without these settings.
 */
export function connectionProblems(config: Settings): string[] {
  const problems: string[] = [];
  const isSet = (name: string) => config[name] !== undefined;
  const exactlyOne = (value: string, context: string) => {
    const file = `${value}_FILE`;
    if (isSet(value) && isSet(file)) problems.push(`${value}: set it or ${file}, not both`);
    else if (!isSet(value) && !isSet(file)) problems.push(`${value} or ${file} is required ${context}`);
  };

  const mechanism = config.KAFKA_SASL_MECHANISM;
  if (mechanism === undefined) {
    for (const name of [...SASL_USER_SETTINGS, ...OAUTH_SETTINGS].filter(isSet))
      problems.push(`${name} is set but KAFKA_SASL_MECHANISM is not: set the mechanism, or unset ${name}`);
  } else if (typeof mechanism === "string" && SASL_PASSWORD_MECHANISMS.includes(mechanism)) {
    const context = `by KAFKA_SASL_MECHANISM=${mechanism}`;
    if (!isSet("KAFKA_SASL_USERNAME")) problems.push(`KAFKA_SASL_USERNAME is required ${context}`);
    exactlyOne("KAFKA_SASL_PASSWORD", context);
    for (const name of OAUTH_SETTINGS.filter(isSet))
      problems.push(`${name} is for KAFKA_SASL_MECHANISM=oauthbearer, not ${mechanism}`);
  } else if (mechanism === "oauthbearer") {
    for (const name of SASL_USER_SETTINGS.filter(isSet))
      problems.push(`${name} is not used by KAFKA_SASL_MECHANISM=oauthbearer`);
    const grant = OAUTH_GRANT_SETTINGS.filter(isSet);
    if (isSet("KAFKA_OAUTH_TOKEN_FILE")) {
      for (const name of grant)
        problems.push(`${name}: set KAFKA_OAUTH_TOKEN_FILE or a client grant, not both`);
    } else if (grant.length === 0) {
      problems.push(
        "KAFKA_OAUTH_TOKEN_FILE or KAFKA_OAUTH_TOKEN_URL (with its client) is required by KAFKA_SASL_MECHANISM=oauthbearer",
      );
    } else {
      const context = "by the client grant of KAFKA_OAUTH_TOKEN_URL";
      for (const name of ["KAFKA_OAUTH_TOKEN_URL", "KAFKA_OAUTH_CLIENT_ID", "KAFKA_OAUTH_AUDIENCE"])
        if (!isSet(name)) problems.push(`${name} is required ${context}`);
      exactlyOne("KAFKA_OAUTH_CLIENT_SECRET", context);
    }
  }

  if (config.KAFKA_SSL !== true) {
    for (const name of ["KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE"].filter(isSet))
      problems.push(`${name} is set but KAFKA_SSL is not true`);
  }
  if (isSet("KAFKA_SSL_CERT_FILE") !== isSet("KAFKA_SSL_KEY_FILE"))
    problems.push("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS): set both or neither");

  if (isSet("REDIS_PASSWORD") && isSet("REDIS_PASSWORD_FILE"))
    problems.push("REDIS_PASSWORD: set it or REDIS_PASSWORD_FILE, not both");
  if (isSet("REDIS_USERNAME") && !isSet("REDIS_PASSWORD") && !isSet("REDIS_PASSWORD_FILE"))
    problems.push("REDIS_PASSWORD or REDIS_PASSWORD_FILE is required by REDIS_USERNAME");
  const redisTls = config.REDIS_TLS === true || String(config.REDIS_URL ?? "").startsWith("rediss:");
  if (isSet("REDIS_TLS_CA_FILE") && !redisTls)
    problems.push("REDIS_TLS_CA_FILE is set but neither REDIS_TLS nor a rediss:// REDIS_URL asks for TLS");

  for (const name of FILES) {
    const path = config[name];
    if (typeof path === "string") {
      const problem = unreadable(path);
      if (problem) problems.push(`${name}: ${problem}`);
    }
  }
  return problems;
}

function unreadable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return `${path} is not a file`;
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? `${path} does not exist` : `cannot read ${path} (${code ?? String(error)})`;
  }
}

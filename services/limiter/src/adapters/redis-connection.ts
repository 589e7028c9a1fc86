import { readFileSync } from "node:fs";
import type { BaseConfig } from "@taituri/config";
import type { RedisOptions } from "ioredis";

export type RedisSecuritySettings = Pick<
  BaseConfig,
  | "REDIS_URL"
  | "REDIS_USERNAME"
  | "REDIS_PASSWORD"
  | "REDIS_PASSWORD_FILE"
  | "REDIS_TLS"
  | "REDIS_TLS_CA_FILE"
>;

/**
 * ioredis's credential and TLS options from the settings, for one Redis and for each node of a
 * Cluster (`redisOptions`). A user or password in REDIS_URL wins over these (ioredis takes the
 * URL's first); files are read now, at start-up. A rediss:// URL turns TLS on by itself; the CA
 * file applies to it too.
 */
export function redisSecurity(
  settings: RedisSecuritySettings,
): Pick<RedisOptions, "username" | "password" | "tls"> {
  const options: Pick<RedisOptions, "username" | "password" | "tls"> = {};
  if (settings.REDIS_USERNAME) options.username = settings.REDIS_USERNAME;
  if (settings.REDIS_PASSWORD !== undefined) options.password = settings.REDIS_PASSWORD;
  else if (settings.REDIS_PASSWORD_FILE)
    options.password = readFileSync(settings.REDIS_PASSWORD_FILE, "utf8").trim();
  const tls = settings.REDIS_TLS || settings.REDIS_URL.startsWith("rediss:");
  if (tls)
    options.tls = settings.REDIS_TLS_CA_FILE ? { ca: readFileSync(settings.REDIS_TLS_CA_FILE, "utf8") } : {};
  return options;
}

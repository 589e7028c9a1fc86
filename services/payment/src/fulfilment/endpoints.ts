import { isIP } from "node:net";
import { ConfigError } from "@taituri/config";

/**
 * Where each shop's paid orders are posted, and with which secret. The URL comes from the catalog
 * (`fulfilment.url`, a ConfigMap), the secret from ORDERS_WEBHOOK_SECRETS_FILE (a Kubernetes
 * Secret), so no secret ever sits in the catalog. ORDERS_WEBHOOK_URL with ORDERS_WEBHOOK_SECRET is
 * the endpoint of every shop the catalog gives none (a one-shop deployment needs only those two).
 * A shop with neither has no endpoint: its orders are kept for the orders CLI.
 */
export interface ShopEndpoint {
  url: string;
  /** The current secret first; more while a rotation is under way (each signs every post). */
  secrets: string[];
  /** Where the URL came from: the shop's catalog entry, or ORDERS_WEBHOOK_URL. */
  from: "catalog" | "default";
}

export interface Endpoints {
  forShop(shopId: string): ShopEndpoint | undefined;
}

/** What endpoint resolution reads of a catalog shop. */
export interface EndpointShop {
  id: string;
  fulfilment?: { url: string } | undefined;
}

/** HMAC keys shorter than this are refused: 32 characters of a random secret are 128 bits or more. */
export const MIN_SECRET_LENGTH = 32;

const LOOPBACK_NAMES = new Set(["localhost", "[::1]"]);

function isLoopback(hostname: string): boolean {
  if (LOOPBACK_NAMES.has(hostname)) return true;
  return isIP(hostname) === 4 && hostname.startsWith("127.");
}

/**
 * Why an endpoint URL cannot be used, or undefined. Outside local, orders (names, addresses) and
 * their signatures go over TLS only: plain http is refused except to a loopback address (a sidecar
 * or a tunnel on the same host).
 */
export function endpointUrlProblem(url: string, local: boolean): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "is not a URL";
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return "must be an http(s) URL";
  if (parsed.username || parsed.password) return "must not hold credentials (the signature authenticates)";
  if (parsed.protocol === "http:" && !local && !isLoopback(parsed.hostname))
    return "must be https outside DEPLOYMENT_ENVIRONMENT=local (plain http only to a loopback address)";
  return undefined;
}

/**
 * Reads ORDERS_WEBHOOK_SECRETS_FILE: a JSON object of shop id to secret, or to a list of secrets
 * (the current one first) while a secret is rotated.
 */
export function parseSecretsFile(text: string, path: string): Record<string, string[]> {
  const problem = (message: string) => new ConfigError([`ORDERS_WEBHOOK_SECRETS_FILE (${path}): ${message}`]);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // The parser's message can quote the file, and the file is secrets.
    throw problem("not valid JSON");
  }
  if (typeof data !== "object" || data === null || Array.isArray(data))
    throw problem('expected an object { "<shop id>": "<secret>" }');
  const secrets: Record<string, string[]> = {};
  for (const [shop, value] of Object.entries(data)) {
    const list = typeof value === "string" ? [value] : value;
    if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === "string"))
      throw problem(`shop "${shop}": expected a secret or a non-empty list of secrets`);
    secrets[shop] = list;
  }
  return secrets;
}

export interface EndpointSettings {
  /** ORDERS_WEBHOOK_URL. */
  defaultUrl?: string | undefined;
  /** ORDERS_WEBHOOK_SECRET. */
  defaultSecret?: string | undefined;
  /** ORDERS_WEBHOOK_SECRETS_FILE, read. */
  secrets: Record<string, string[]>;
  /** DEPLOYMENT_ENVIRONMENT is "local". */
  local: boolean;
}

/**
 * Every shop's endpoint, or a ConfigError naming every problem of the catalog's URLs and the
 * secrets file: a paid order must not wait for a
 * misconfiguration to show at its first attempt. Warnings are for what works but looks unintended
 * (a secret no endpoint uses).
 */
export function resolveEndpoints(
  shops: readonly EndpointShop[],
  settings: EndpointSettings,
): { endpoints: Endpoints; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  const weak = (secrets: readonly string[]) => secrets.some((s) => s.length < MIN_SECRET_LENGTH);

  // ORDERS_WEBHOOK_URL and ORDERS_WEBHOOK_SECRET were checked with the rest of the config (config.ts).
  const fallback: ShopEndpoint | undefined =
    settings.defaultUrl && settings.defaultSecret
      ? { url: settings.defaultUrl, secrets: [settings.defaultSecret], from: "default" }
      : undefined;

  const byShop = new Map<string, ShopEndpoint>();
  for (const shop of shops) {
    const url = shop.fulfilment?.url;
    const secrets = settings.secrets[shop.id];
    if (!url) {
      if (secrets)
        warnings.push(
          `ORDERS_WEBHOOK_SECRETS_FILE has a secret for shop ${shop.id}, whose catalog entry has no fulfilment.url: unused`,
        );
      continue;
    }
    const problem = endpointUrlProblem(url, settings.local);
    if (problem) problems.push(`shop ${shop.id}: fulfilment.url ${problem}`);
    if (!secrets)
      problems.push(`shop ${shop.id} has a fulfilment.url but no secret in ORDERS_WEBHOOK_SECRETS_FILE`);
    else if (weak(secrets))
      problems.push(`shop ${shop.id}: its secret must be at least ${MIN_SECRET_LENGTH} characters`);
    byShop.set(shop.id, { url, secrets: secrets ?? [], from: "catalog" });
  }
  const known = new Set(shops.map((s) => s.id));
  for (const shop of Object.keys(settings.secrets))
    if (!known.has(shop))
      warnings.push(
        `ORDERS_WEBHOOK_SECRETS_FILE has a secret for shop ${shop}, which the catalog does not list`,
      );

  if (problems.length > 0) throw new ConfigError(problems);
  return { endpoints: { forShop: (shopId) => byShop.get(shopId) ?? fallback }, warnings };
}

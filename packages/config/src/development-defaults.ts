import { BlockList, isIP } from "node:net";
import { z } from "zod";

/** Secrets shorter than this are refused outside local: 32 random bytes are 256 bits. */
export const MIN_SECRET_BYTES = 32;

/**
 * What makes a setting's value a development one. Each service marks its settings with one
 * (refuseOutsideLocal); under any DEPLOYMENT_ENVIRONMENT but `local`, loadConfig refuses the start
 * while such a value is in effect, whether it came from the schema's default or was set by hand to
 * the same public value.
 */
export type DevelopmentRule = (
  | {
      /** A secret: these public values (they are in this repository) and any shorter than MIN_SECRET_BYTES. */
      secret: readonly string[];
    }
  | {
      /** Values meant for development only (a provider that charges nothing, a public token). */
      values: readonly string[];
      /** What such a value is; "the public development default" when unset. */
      is?: string;
      /** What to set instead. */
      instead: string;
    }
  | {
      /** An OIDC issuer on a loopback address: only a development issuer runs there. */
      loopbackIssuer: true;
    }
  | {
      /** Unset is the development value (what it leaves off), whatever value is set is not. */
      unset: true;
      is: string;
      instead: string;
    }
  | {
      /** A development tool's setting: whatever value is set is a development one; unset is not. */
      developmentOnly: true;
      is: string;
      instead: string;
    }
) & {
  /** The setting takes effect only while each of these other settings has this value. */
  when?: Readonly<Record<string, string>>;
};

const PUBLIC = "the public development default";
const SET_SECRET = `set a secret of at least ${MIN_SECRET_BYTES} bytes`;
const LOOPBACK_ISSUER =
  "a loopback issuer (a development one on this machine); set the issuer of your deployment's tokens (in Kubernetes, the API server's service-account issuer)";

const rules = z.registry<DevelopmentRule>();

/**
 * Marks a setting whose value can be a development one. Wrap the whole field as the schema
 * declares it (a `.default` or `.optional` added outside would hide the mark).
 */
export function refuseOutsideLocal<T extends z.ZodType>(schema: T, rule: DevelopmentRule): T {
  rules.add(schema, rule);
  return schema;
}

const loopback = new BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("0.0.0.0", "ipv4");
loopback.addAddress("::1", "ipv6");
loopback.addAddress("::", "ipv6");

/** Whether a URL names this machine: localhost, 127.0.0.0/8, ::1 (IPv4-mapped too) or 0.0.0.0. */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/\.$/, "").replace(/^\[(.*)\]$/, "$1");
  } catch {
    return false;
  }
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const family = isIP(host);
  return family !== 0 && loopback.check(host, family === 4 ? "ipv4" : "ipv6");
}

/** Why `value` is a development one under `rule` (what it is; what to set instead), or undefined. */
export function developmentProblem(rule: DevelopmentRule, value: string): string | undefined {
  if ("secret" in rule) {
    if (rule.secret.includes(value)) return `${PUBLIC}; ${SET_SECRET}`;
    if (Buffer.byteLength(value, "utf8") < MIN_SECRET_BYTES)
      return `shorter than ${MIN_SECRET_BYTES} bytes; ${SET_SECRET}`;
    return undefined;
  }
  if ("values" in rule)
    return rule.values.includes(value) ? `${rule.is ?? PUBLIC}; ${rule.instead}` : undefined;
  if ("unset" in rule) return undefined;
  if ("developmentOnly" in rule) return `${rule.is}; ${rule.instead}`;
  return isLoopbackUrl(value) ? LOOPBACK_ISSUER : undefined;
}

/**
 * One line per marked setting whose value in effect is a development one, naming the variable and
 * what to set, or none under DEPLOYMENT_ENVIRONMENT=local (or a schema without it). Each setting is
 * parsed on its own, so these are found beside any other problem of the environment; a value its
 * own schema refuses is left to that problem.
 */
export function developmentDefaultsInEffect(
  schema: z.ZodObject,
  env: Record<string, string | undefined>,
): string[] {
  const inEffect = (name: string): unknown => {
    const parsed = schema.shape[name]?.safeParse(env[name]);
    return parsed?.success ? parsed.data : undefined;
  };
  const environment = inEffect("DEPLOYMENT_ENVIRONMENT");
  if (typeof environment !== "string" || environment === "local") return [];
  const problems: string[] = [];
  for (const [name, field] of Object.entries(schema.shape)) {
    const rule = rules.get(field);
    if (!rule) continue;
    // String(): a flag's value in effect is a boolean, and `when` says "false".
    if (Object.entries(rule.when ?? {}).some(([other, value]) => String(inEffect(other)) !== value)) continue;
    const value = inEffect(name);
    if ("unset" in rule) {
      if (value === undefined)
        problems.push(`${name}: ${rule.is}; ${rule.instead} (DEPLOYMENT_ENVIRONMENT=${environment})`);
      continue;
    }
    const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
    const problem = values.map((v) => developmentProblem(rule, String(v))).find((p) => p !== undefined);
    if (problem) problems.push(`${name}: ${problem} (DEPLOYMENT_ENVIRONMENT=${environment})`);
  }
  return problems;
}

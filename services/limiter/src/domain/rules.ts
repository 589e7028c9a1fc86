import { z } from "zod";

/** Whom a limit counts for: one counter per shopper, per shop, or one for everybody. */
export type Scope = "shopper" | "shop" | "global";

/** One GCRA limit: `limit` units per `periodMs`, refilled evenly (see docs/limiter.md). */
export interface Limit {
  name: string;
  scope: Scope;
  limit: number;
  periodMs: number;
  /** "calls" counts each admitted call as 1; "cost" counts the call's cost (a budget). */
  unit: "calls" | "cost";
  /** Evaluated, counted and reported, but never denies. */
  shadow: boolean;
}

export interface RuleSet {
  name: string;
  limits: Limit[];
  /** What Consume answers when Redis cannot be reached. */
  onRedisError: "deny" | "allow";
  /** Largest cost one call may ask for. */
  maxCost: number;
}

export interface Rules {
  ruleSets: Map<string, RuleSet>;
  /** How long an idempotency record is kept (ms). */
  idempotencyTtlMs: number;
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "10m", "1d", "500ms", "30s" → milliseconds. */
export const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as "500ms", "30s", "10m", "2h" or "1d"')
  .transform((value) => {
    const [, amount = "0", unit = "ms"] = value.match(/^(\d+)(ms|s|m|h|d)$/) ?? [];
    return Number(amount) * (units[unit] ?? 1);
  })
  .refine((ms) => ms > 0 && ms <= 366 * 86_400_000, "between 1ms and 366d");

const limitSchema = z.strictObject({
  scope: z.enum(["shopper", "shop", "global"]),
  limit: z.number().int().positive().max(1_000_000_000),
  period: duration,
  unit: z.enum(["calls", "cost"]).default("calls"),
  shadow: z.boolean().default(false),
});

const name = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, "lower-case letters, digits, '_', '.', '-'");

export const rulesSchema = z
  .strictObject({
    idempotencyTtl: duration.default(86_400_000),
    limits: z.record(name, limitSchema),
    ruleSets: z.record(
      name,
      z.strictObject({
        limits: z.array(name).min(1),
        onRedisError: z.enum(["deny", "allow"]).default("deny"),
        maxCost: z.number().int().positive().default(1000),
      }),
    ),
  })
  .superRefine((file, context) => {
    for (const [setName, set] of Object.entries(file.ruleSets)) {
      for (const [index, limitName] of set.limits.entries()) {
        if (!(limitName in file.limits))
          context.addIssue({
            code: "custom",
            path: ["ruleSets", setName, "limits", index],
            message: `unknown limit "${limitName}"`,
          });
        if (set.limits.indexOf(limitName) !== index)
          context.addIssue({
            code: "custom",
            path: ["ruleSets", setName, "limits", index],
            message: `limit "${limitName}" listed twice`,
          });
      }
    }
  });

export class RulesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RulesError";
  }
}

/** Validates a parsed rules document (from YAML) and compiles it; throws RulesError naming every problem. */
export function compileRules(document: unknown): Rules {
  const parsed = rulesSchema.safeParse(document);
  if (!parsed.success)
    throw new RulesError(
      parsed.error.issues.map((issue) => `${issue.path.join(".") || "(file)"}: ${issue.message}`).join("; "),
    );
  const ruleSets = new Map<string, RuleSet>();
  for (const [setName, set] of Object.entries(parsed.data.ruleSets)) {
    ruleSets.set(setName, {
      name: setName,
      onRedisError: set.onRedisError,
      maxCost: set.maxCost,
      limits: set.limits.map((limitName) => {
        const limit = parsed.data.limits[limitName];
        if (!limit) throw new RulesError(`unknown limit "${limitName}"`);
        return {
          name: limitName,
          scope: limit.scope,
          limit: limit.limit,
          periodMs: limit.period,
          unit: limit.unit,
          shadow: limit.shadow,
        };
      }),
    });
  }
  return { ruleSets, idempotencyTtlMs: parsed.data.idempotencyTtl };
}

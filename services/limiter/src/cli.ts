/**
 * Operator CLI: a subject's usage (Peek) and its reset (ResetUsage), both admin only, over the
 * limiter's authenticated gRPC API with a token from the OIDC issuer. `npm run limiter -- --help`.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { ConfigError } from "@taituri/config";
import { createTokenSource } from "@taituri/oidc";
import { limiter } from "@taituri/proto";
import { type CliConfig, loadCliConfig } from "./config.ts";

const usage = `Usage: npm run limiter -- <peek|reset> --shop <id> [--shopper <id>] [--rule-set <name>] [--json]

  peek    a subject's usage of every limit of the rule set (nothing is taken)
  reset   forgets the subject's shopper and shop buckets
  Both are admin RPCs: a client in LIMITER_CALLERS with LIMITER_ADMIN_SCOPE, or an admin subject.

  --rule-set <name>        default generation-round
  --json                   machine-readable output
  --url <host:port>        LIMITER_URL (127.0.0.1:50051)
  --issuer <url>           OIDC_ISSUER_URL (http://127.0.0.1:3010)
  --token-url <url>        OIDC_TOKEN_URL (<issuer>/token)
  --client-id <id>         OIDC_CLIENT_ID (limiter-admin)
  --client-secret <s>      OIDC_CLIENT_SECRET (prefer the variable: flags show up in ps)
  --token-file <path>      OIDC_TOKEN_FILE: a ready token instead of client credentials
  --scope <scopes>         OIDC_SCOPE: scopes to ask the issuer for
  --audience <aud>         LIMITER_AUDIENCE (limiter)
  --timeout-ms <ms>        LIMITER_CLI_TIMEOUT_MS (5000)

Exit codes: 0 done, 1 other error, 2 bad usage or request, 3 unauthenticated (token refused or
not issued), 4 permission denied (not an admin, or not a listed caller), 5 limiter or issuer unreachable.`;

const exitCodes = {
  ok: 0,
  error: 1,
  usage: 2,
  unauthenticated: 3,
  permissionDenied: 4,
  unreachable: 5,
} as const;

/** A failure with the exit code it maps to and a message for a human. */
class CliError extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

const flagToSetting = {
  url: "LIMITER_URL",
  issuer: "OIDC_ISSUER_URL",
  "token-url": "OIDC_TOKEN_URL",
  "client-id": "OIDC_CLIENT_ID",
  "client-secret": "OIDC_CLIENT_SECRET",
  "token-file": "OIDC_TOKEN_FILE",
  scope: "OIDC_SCOPE",
  audience: "LIMITER_AUDIENCE",
  "timeout-ms": "LIMITER_CLI_TIMEOUT_MS",
} as const;

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new CliError(exitCodes.usage, `${error instanceof Error ? error.message : error}\n\n${usage}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return exitCodes.ok;
  }
  const command = positionals[0];
  if ((command !== "peek" && command !== "reset") || positionals.length > 1)
    throw new CliError(exitCodes.usage, `expected one command, peek or reset\n\n${usage}`);
  if (!values.shop) throw new CliError(exitCodes.usage, `--shop is required\n\n${usage}`);

  const flags: Record<string, string | undefined> = {};
  for (const [flag, setting] of Object.entries(flagToSetting)) {
    const value = values[flag as keyof typeof flagToSetting];
    if (value !== undefined) flags[setting] = value;
  }
  let config: CliConfig;
  try {
    config = loadCliConfig(flags);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(exitCodes.usage, error.message);
    throw error;
  }

  const ruleSet = values["rule-set"];
  const subject = { shopId: values.shop, shopperId: values.shopper ?? "" };
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${await token(config)}`);
  const client = new limiter.LimiterServiceClient(config.LIMITER_URL, credentials.createInsecure());
  const deadline = () => new Date(Date.now() + config.LIMITER_CLI_TIMEOUT_MS);
  const where = `limiter at ${config.LIMITER_URL}`;
  try {
    if (command === "peek") {
      const response = await new Promise<limiter.PeekResponse>((resolve, reject) =>
        client.peek({ subject, ruleSet }, metadata, { deadline: deadline() }, (error, value) =>
          error ? reject(grpcError(error, where)) : resolve(value),
        ),
      );
      const allowed = response.limits.every((limit) => limit.allowed || limit.shadow);
      if (values.json) print({ ruleSet, subject, allowed, limits: response.limits });
      else process.stdout.write(peekTable(ruleSet, subject, allowed, response.limits));
    } else {
      const response = await new Promise<limiter.ResetUsageResponse>((resolve, reject) =>
        client.resetUsage({ subject, ruleSet }, metadata, { deadline: deadline() }, (error, value) =>
          error ? reject(grpcError(error, where)) : resolve(value),
        ),
      );
      if (values.json) print({ ruleSet, subject, deleted: response.deleted });
      else
        process.stdout.write(
          `reset ${describe(ruleSet, subject)}: ${response.deleted} bucket(s) deleted (global limits are never reset)\n`,
        );
    }
  } finally {
    client.close();
  }
  return exitCodes.ok;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      shop: { type: "string" },
      shopper: { type: "string" },
      "rule-set": { type: "string", default: "generation-round" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      url: { type: "string" },
      issuer: { type: "string" },
      "token-url": { type: "string" },
      "client-id": { type: "string" },
      "client-secret": { type: "string" },
      "token-file": { type: "string" },
      scope: { type: "string" },
      audience: { type: "string" },
      "timeout-ms": { type: "string" },
    },
  });
}

/** The bearer token: a file's (Kubernetes projected or `kubectl create token`), else client credentials. */
async function token(config: CliConfig): Promise<string> {
  if (config.OIDC_TOKEN_FILE) {
    try {
      return (await readFile(config.OIDC_TOKEN_FILE, "utf8")).trim();
    } catch (error) {
      throw new CliError(exitCodes.usage, `cannot read OIDC_TOKEN_FILE: ${(error as Error).message}`);
    }
  }
  if (!config.OIDC_CLIENT_SECRET)
    throw new CliError(
      exitCodes.usage,
      "no credentials: set OIDC_CLIENT_SECRET (with OIDC_CLIENT_ID) or OIDC_TOKEN_FILE",
    );
  const tokenUrl = config.OIDC_TOKEN_URL ?? `${config.OIDC_ISSUER_URL.replace(/\/$/, "")}/token`;
  try {
    return await createTokenSource({
      tokenUrl,
      clientId: config.OIDC_CLIENT_ID,
      clientSecret: config.OIDC_CLIENT_SECRET,
      audience: config.LIMITER_AUDIENCE,
      scope: config.OIDC_SCOPE,
    })();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // createTokenSource reports the endpoint's refusal as "token endpoint answered <status>".
    if (/answered 4\d\d/.test(message))
      throw new CliError(
        exitCodes.unauthenticated,
        `UNAUTHENTICATED: the issuer refused client "${config.OIDC_CLIENT_ID}" (${message}) at ${tokenUrl}`,
      );
    throw new CliError(exitCodes.unreachable, `OIDC issuer unreachable at ${tokenUrl}: ${message}`);
  }
}

function grpcError(error: ServiceError, where: string): CliError {
  const name = status[error.code] ?? String(error.code);
  const text = `${name}: ${error.details} (${where})`;
  switch (error.code) {
    case status.UNAUTHENTICATED:
      return new CliError(exitCodes.unauthenticated, text);
    case status.PERMISSION_DENIED:
      return new CliError(exitCodes.permissionDenied, text);
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return new CliError(exitCodes.unreachable, text);
    case status.INVALID_ARGUMENT:
      return new CliError(exitCodes.usage, text);
    default:
      return new CliError(exitCodes.error, text);
  }
}

function describe(ruleSet: string, subject: { shopId: string; shopperId: string }): string {
  return `rule set ${ruleSet}, shop ${subject.shopId}${subject.shopperId ? `, shopper ${subject.shopperId}` : ""}`;
}

function peekTable(
  ruleSet: string,
  subject: { shopId: string; shopperId: string },
  allowed: boolean,
  limits: limiter.LimitState[],
): string {
  const rows = [
    ["LIMIT", "REMAINING", "FULL AGAIN IN", "NEXT CALL", "SHADOW"],
    ...limits.map((limit) => [
      limit.limit,
      String(limit.remaining),
      duration(limit.resetAfterMs),
      limit.allowed ? "allowed" : `denied, retry in ${duration(limit.retryAfterMs)}`,
      limit.shadow ? "yes" : "no",
    ]),
  ];
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  const lines = rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("  ")
      .trimEnd(),
  );
  return `${describe(ruleSet, subject)}: next call ${allowed ? "allowed" : "denied"}\n${lines.join("\n")}\n`;
}

function duration(ms: number): string {
  if (ms <= 0) return "0s";
  const seconds = Math.ceil(ms / 1000);
  const parts = [
    [Math.floor(seconds / 86_400), "d"],
    [Math.floor((seconds % 86_400) / 3600), "h"],
    [Math.floor((seconds % 3600) / 60), "m"],
    [seconds % 60, "s"],
  ] as const;
  return (
    parts
      .filter(([value]) => value > 0)
      .map(([value, unit]) => `${value}${unit}`)
      .join(" ") || "0s"
  );
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof CliError) {
    process.stderr.write(`limiter: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`limiter: ${error instanceof Error ? (error.stack ?? error.message) : error}\n`);
    process.exitCode = exitCodes.error;
  }
}

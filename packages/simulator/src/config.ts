import { baseSchema, ConfigError, csv, flag, loadConfig, port, z } from "@taituri/config";
import { schema as conversationSchema } from "@taituri/conversation-service/config";
import { catalogNumbers } from "./catalog-numbers.ts";
import type { BusinessNumber } from "./types.ts";

/** An http(s) URL: `ingress:3000/webhook` parses as a URL of scheme "ingress:", and would fail at each send. */
const httpUrl = (schema: z.ZodString) =>
  schema.refine((value) => {
    try {
      return ["http:", "https:"].includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, "must be an http:// or https:// URL");

/**
 * The settings of main.ts, the simulator as a process of its own (a cluster demo, staging); `npm
 * start` gives it the same values in scripts/start.ts instead. It plays Meta towards one ingress, so
 * its secrets are that ingress's.
 */
export const schema = baseSchema
  .pick({
    LOG_LEVEL: true,
    LOG_FORMAT: true,
    DEPLOYMENT_ENVIRONMENT: true,
    // The services' key, so a shopper the simulator logs has the pseudonym the services log.
    PSEUDONYM_KEY: true,
  })
  .extend({
    // Port of the chat UI, the Graph API (/v23.0), the images endpoint (/v1) and /sim/api.
    SIMULATOR_PORT: port(3900),
    // Interface to listen on; 0.0.0.0 in a container, loopback on a laptop.
    SIMULATOR_HOST: z.string().default("127.0.0.1"),
    // Ingress's POST /webhook, where the shoppers' messages and the delivery statuses are sent.
    SIMULATOR_WEBHOOK_URL: httpUrl(z.string({ error: "SIMULATOR_WEBHOOK_URL is required" })),
    // Ingress's app secret(s), comma-separated as ingress takes them: the first signs the webhooks,
    // as Meta signs with the app's current secret.
    WHATSAPP_APP_SECRET: csv()
      .pipe(z.array(z.string()).min(1, "WHATSAPP_APP_SECRET is required"))
      .transform((secrets) => secrets[0] as string),
    // The bearer the Graph API side requires: ingress's WHATSAPP_ACCESS_TOKEN.
    WHATSAPP_ACCESS_TOKEN: z.string({ error: "WHATSAPP_ACCESS_TOKEN is required" }),
    // The conversation's catalog (its CATALOG_FILE): shoppers write to the business numbers it lists.
    CATALOG_FILE: conversationSchema.shape.CATALOG_FILE,
    // Jaeger's base URL, for each message's link to its trace; unset: no links.
    SIMULATOR_JAEGER_URL: httpUrl(z.string()).optional(),
    // Whether SIMULATOR_JAEGER_URL serves Jaeger's UI (links open the trace page) or only its query
    // API (links open the trace's JSON).
    SIMULATOR_JAEGER_UI: flag(false),
  })
  .superRefine((config, ctx) => {
    if (config.SIMULATOR_JAEGER_UI && !config.SIMULATOR_JAEGER_URL)
      ctx.addIssue({
        code: "custom",
        path: ["SIMULATOR_JAEGER_UI"],
        message:
          "is true but SIMULATOR_JAEGER_URL is not set: set Jaeger's URL, or unset SIMULATOR_JAEGER_UI",
      });
  });

export type SimulatorConfig = z.infer<typeof schema>;

export const loadSimulatorConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

/**
 * The business numbers of CATALOG_FILE, read at start-up: a file that is missing or not a valid
 * catalog is a configuration problem naming CATALOG_FILE, as a bad variable is.
 */
export function businessNumbersOf(config: Pick<SimulatorConfig, "CATALOG_FILE">): BusinessNumber[] {
  try {
    return catalogNumbers(config.CATALOG_FILE);
  } catch (error) {
    // A catalog that fails its schema: its issues on one line, each with its path.
    const reason =
      error instanceof z.ZodError
        ? z.prettifyError(error).replace(/\n\s*/g, " ")
        : error instanceof Error
          ? error.message
          : String(error);
    throw new ConfigError([`CATALOG_FILE: ${config.CATALOG_FILE}: ${reason}`]);
  }
}

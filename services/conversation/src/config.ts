import { fileURLToPath } from "node:url";
import { baseSchema, loadConfig, port, positiveInt, z } from "@taituri/config";

export const schema = baseSchema.extend({
  // Port of /healthz, /readyz and /metrics.
  CONVERSATION_PORT: port(3001),
  CONVERSATION_HOST: z.string().default("127.0.0.1"),
  // The message catalog (every language, every message), validated at start-up.
  MESSAGES_FILE: z.string().default(fileURLToPath(new URL("../data/messages.json", import.meta.url))),
  // Language of the shop's messages; must be in the catalog.
  SHOP_LANGUAGE: z.string().default("en"),
  // Partitions handled at once; order within each is kept.
  CONSUMER_CONCURRENCY: positiveInt(3),
});

export type ConversationConfig = z.infer<typeof schema>;

export const loadConversationConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

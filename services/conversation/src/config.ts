import { fileURLToPath } from "node:url";
import {
  baseSchema,
  devClockUrl,
  loadConfig,
  port,
  positiveInt,
  refuseOutsideLocal,
  z,
} from "@taituri/config";
// The contracts alone, not @taituri/proto's index: config loads before telemetry starts, and the
// index loads @grpc/grpc-js, which would then escape its instrumentation (no limiter spans).
import * as contracts from "@taituri/proto/contracts";

const data = (file: string) => fileURLToPath(new URL(`../data/${file}`, import.meta.url));

export const schema = baseSchema.extend({
  // Port of /healthz, /readyz and /metrics.
  CONVERSATION_PORT: port(3001),
  CONVERSATION_HOST: z.string().default("127.0.0.1"),
  // Shops: products, prices, themes and styles per business number (YAML), validated at start-up.
  CATALOG_FILE: z.string().default(data("catalog.yaml")),
  // The message catalog (every language, every message), validated at start-up.
  MESSAGES_FILE: z.string().default(data("messages.json")),
  // Countries shops may ship to (names, postcode shapes; JSON), validated at start-up with the catalog.
  CONVERSATION_COUNTRIES_FILE: z.string().default(data("countries.json")),
  // A shopper silent for longer than this is asked "continue or start over?" on return.
  SESSION_TTL_MS: positiveInt(2 * 3600 * 1000),
  // A development clock to follow (the WhatsApp simulator's): sessions, the 24-hour window and the
  // watchdogs are judged on it. Refused outside local.
  DEV_CLOCK_URL: devClockUrl(),
  // A round with no result after this long is abandoned with an apology and a retry button. Longer
  // than a round whose worker died mid-call and was taken over (generation's lease plus a whole
  // provider call, contracts.ROUND_TIMING), so designs someone paid for are not thrown away.
  GENERATION_DEADLINE_MS: positiveInt(contracts.ROUND_TIMING.deadlineMs),
  // How often due watchdogs are looked for.
  TIMER_POLL_MS: positiveInt(1000),
  // A conversation silent for this long is deleted, with its versions (delivery addresses among
  // them) and identity claims. 90 days: a shopper back within a season finds their journey, and
  // orders are settled long before (payment keeps its own records). At least 8: longer than the
  // topics keep their records (7 days, packages/kafka topicSpecs), so no event of a deleted
  // conversation can be delivered again and recreate it.
  CONVERSATION_RETENTION_DAYS: z.coerce.number().int().min(8).default(90),
  // How often conversations past their retention are looked for (by the watchdog poller's loop).
  CONVERSATION_RETENTION_SWEEP_MS: positiveInt(3600 * 1000),
  // Partitions handled at once; order within each is kept.
  CONSUMER_CONCURRENCY: positiveInt(3),
  // Conversations of one partition handled at once (one conversation's events stay in order). Each
  // message waits on the database and the broker for ~10 ms; one at a time capped a partition at
  // about 100 messages/s with the CPU half idle.
  CONSUMER_KEY_CONCURRENCY: positiveInt(16),
  // Conversations whose latest version is kept in memory, so that their next event needs no read
  // (a stale one costs a lost commit and a read, never a wrong write). 0 turns it off.
  CONVERSATION_CACHE_SIZE: z.coerce.number().int().min(0).default(10_000),
  // How often each replica looks whether conversations were deleted (an erase, the retention sweep)
  // and then drops every one it keeps in memory, which it would otherwise write back. At most 5 s:
  // the erase waits up to 20 s for every replica to confirm, and one silent for 15 s is taken for gone.
  CONVERSATION_CACHE_CHECK_MS: z.coerce.number().int().positive().max(5000).default(1000),
  // Crash-testing only: the process SIGKILLs itself at this step of applying a shopper's message
  // (after its version claim and before its update, a step a conversation's first message does not
  // have; or after its commit and before publishing), as a crash would. Never set it in a
  // deployment (outside local it is refused); tests/integration/conversation-crash.test.ts uses it.
  CONVERSATION_CRASH_AT: refuseOutsideLocal(z.enum(["after_claim", "after_commit"]).optional(), {
    values: ["after_claim", "after_commit"],
    is: "a crash test's setting: the process kills itself",
    instead: "unset it",
  }),
});

export type ConversationConfig = z.infer<typeof schema>;

export const loadConversationConfig = (env?: Record<string, string | undefined>) => loadConfig(schema, env);

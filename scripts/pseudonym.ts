/**
 * The pseudonyms an operator searches logs and Jaeger for (docs/operations.md):
 *   PSEUDONYM_KEY=… node scripts/pseudonym.ts <wa_id or BSUID> [<phone_number_id>]
 * prints the shopper's `shopper.id` and, with the business number id, the `conversation.id`;
 *   PSEUDONYM_KEY=… node scripts/pseudonym.ts wamid.…
 * prints a message's `messaging.message.id` (the Kafka spans of its hops carry it).
 * It uses the same key as the services, so run it where that secret is available.
 */
import { exitOnConfigError, loadConfig, z } from "@taituri/config";
import { configurePseudonyms, DEV_PSEUDONYM_KEY, pseudonym, redact } from "@taituri/logging";

const config = exitOnConfigError(() =>
  loadConfig(z.object({ PSEUDONYM_KEY: z.string().min(16).default(DEV_PSEUDONYM_KEY) })),
);
const [waId, phoneNumberId] = process.argv.slice(2);
if (!waId) {
  process.stderr.write("usage: node scripts/pseudonym.ts <wa_id or BSUID> [<phone_number_id>] | <wamid>\n");
  process.exit(64);
}
if (config.PSEUDONYM_KEY === DEV_PSEUDONYM_KEY)
  process.stderr.write("PSEUDONYM_KEY is not set: using the development key\n");
configurePseudonyms(config.PSEUDONYM_KEY);
if (waId.startsWith("wamid.")) {
  process.stdout.write(`messaging.message.id  ${pseudonym(waId)}\n`);
  process.exit(0);
}
const shopper = waId.replace(/^\+/, "");
process.stdout.write(`shopper.id       ${pseudonym(shopper)}\n`);
if (phoneNumberId) process.stdout.write(`conversation.id  ${redact(`${phoneNumberId}:${shopper}`)}\n`);

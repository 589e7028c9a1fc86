/**
 * Prints a curl command that posts a WhatsApp text-message webhook, signed the way Meta signs it
 * (X-Hub-Signature-256 over the raw body with the app secret), to the running ingress.
 *
 *   npm run -s sign-webhook -- "I want a gift" | sh
 *   npm run -s sign-webhook -- --from 447700900123 --name Ana "Rosa"
 *   npm run -s sign-webhook -- --user-id US.13491208655302741918 "I want a gift"     (no phone number)
 *   npm run -s sign-webhook -- --from 447700900123 --user-id US.13491208655302741918 "hi"   (both)
 *
 * Options: --from WA_ID, --user-id BSUID, --name PROFILE_NAME, --phone-number-id ID,
 * --url WEBHOOK_URL, --secret SECRET. Without --from or --user-id, a default phone number.
 */
import { parseArgs } from "node:util";
import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";
import { loadDotEnv } from "./lib.ts";

loadDotEnv();
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    from: { type: "string" },
    "user-id": { type: "string" },
    name: { type: "string", default: "Ana" },
    "phone-number-id": { type: "string", default: "106540352242922" },
    url: { type: "string", default: `http://127.0.0.1:${process.env.INGRESS_PORT ?? 3000}/webhook` },
    secret: { type: "string", default: process.env.WHATSAPP_APP_SECRET?.split(",")[0] ?? "local-app-secret" },
  },
});
const text = positionals.join(" ") || "I want a gift";
const body = JSON.stringify(
  textWebhook(text, {
    ...(values.from ? { waId: values.from } : {}),
    ...(values["user-id"] ? { userId: values["user-id"] } : {}),
    profileName: values.name,
    phoneNumberId: values["phone-number-id"],
  }),
);
const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;
process.stdout.write(
  `curl -sS -i -X POST ${quote(values.url)} -H 'content-type: application/json' -H ${quote(`x-hub-signature-256: ${signWebhook(body, values.secret)}`)} --data-binary ${quote(body)}\n`,
);

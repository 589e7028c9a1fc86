/**
 * A shopper in the terminal: writes through the running WhatsApp simulator (`npm start`), as the
 * browser chat does, and prints the bot's replies as they arrive.
 *
 *   npm run -s shopper -- "I want a gift"
 *   npm run -s shopper -- --phone 447700900123 --name Ana "Rosa"
 *   npm run -s shopper -- --bsuid US.13491208655302741918 "I want a gift"     (no phone number)
 *   npm run -s shopper -- --tap "Birthday"     (a reply button or list row of the bot's last message)
 *
 * Options: --phone WA_ID, --bsuid BSUID, --name NAME (for a new shopper), --tap TITLE,
 * --wait SECONDS (how long to print replies for, 20), --url SIMULATOR_URL. Without --phone or
 * --bsuid, the phone number 15550001111. Exit codes: 0 sent, 1 the simulator refused or is not
 * running, 2 bad usage.
 *
 * Webhooks signed by hand (`npm run sign-webhook`) reach ingress but not the simulator, which then
 * answers the bot's replies with 131047 as Meta would for a shopper it never saw write.
 */
import { parseArgs } from "node:util";
import { loadDotEnv } from "./lib.ts";

interface ChatMessage {
  id: string;
  from: "shopper" | "bot";
  type: string;
  text?: string;
  caption?: string;
  imageUrl?: string;
  buttons?: { id: string; title: string }[];
  list?: { button: string; sections: { rows: { id: string; title: string }[] }[] };
  cta?: { displayText: string; url: string };
}
interface Shopper {
  id: string;
  name: string;
  waId?: string;
  userId?: string;
  messages: ChatMessage[];
}

loadDotEnv();
let values: Record<string, string | undefined>;
let positionals: string[];
try {
  ({ values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      phone: { type: "string" },
      bsuid: { type: "string" },
      name: { type: "string", default: "Ana" },
      tap: { type: "string" },
      wait: { type: "string", default: "20" },
      url: {
        type: "string",
        default: `http://127.0.0.1:${process.env.SIMULATOR_PORT ?? 3900}`,
      },
    },
  }));
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}
const waitMs = Number(values.wait) * 1000;
if (!Number.isFinite(waitMs) || waitMs < 0) {
  process.stderr.write("--wait: a number of seconds\n");
  process.exit(2);
}
const text = positionals.join(" ");
if (!text && !values.tap) {
  process.stderr.write('say something: npm run -s shopper -- "I want a gift"\n');
  process.exit(2);
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${values.url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new Error(`no WhatsApp simulator at ${values.url}: is \`npm start\` running?`);
  }
  const answer = (await response.json().catch(() => ({}))) as T & { error?: string };
  if (!response.ok) throw new Error(`the simulator refused: ${answer.error ?? `HTTP ${response.status}`}`);
  return answer;
}

/** The bot's message as one line or a few: its text, then what can be tapped or opened. */
function describe(message: ChatMessage): string {
  const lines = [message.text ?? message.caption ?? `(${message.type})`];
  if (message.imageUrl) lines.push(`  [image] ${values.url}${message.imageUrl}`);
  for (const button of message.buttons ?? []) lines.push(`  [button] ${button.title}`);
  for (const row of message.list?.sections.flatMap((section) => section.rows) ?? [])
    lines.push(`  [row] ${row.title}`);
  if (message.cta) lines.push(`  [link] ${message.cta.displayText}: ${message.cta.url}`);
  return lines.join("\n");
}

try {
  const phone = values.bsuid && !values.phone ? undefined : (values.phone ?? "15550001111");
  const state = await call<{ shoppers: Shopper[] }>("GET", "/sim/api/state");
  let shopper = state.shoppers.find(
    (s) =>
      (phone !== undefined && s.waId === phone) || (values.bsuid !== undefined && s.userId === values.bsuid),
  );
  shopper ??= await call<Shopper>("POST", "/sim/api/shoppers", {
    name: values.name,
    ...(phone ? { waId: phone } : {}),
    ...(values.bsuid ? { userId: values.bsuid } : {}),
  });
  const seen = new Set(shopper.messages.map((message) => message.id));
  if (values.tap) {
    const title = values.tap.toLowerCase();
    const last = [...shopper.messages].reverse().find((message) => message.from === "bot");
    const button = last?.buttons?.find((b) => b.title.toLowerCase() === title);
    const row = last?.list?.sections.flatMap((s) => s.rows).find((r) => r.title.toLowerCase() === title);
    if (!last || (!button && !row))
      throw new Error(`the bot's last message has no button or row "${values.tap}"`);
    await call("POST", `/sim/api/shoppers/${shopper.id}/messages`, {
      type: button ? "button_reply" : "list_reply",
      replyTo: last.id,
      id: (button ?? row)?.id,
      title: (button ?? row)?.title,
    });
  }
  if (text) await call("POST", `/sim/api/shoppers/${shopper.id}/messages`, { type: "text", text });
  // Replies arrive over a few seconds (a round of designs takes longer): printed as they come,
  // until none has come for a while or --wait is over.
  const deadline = Date.now() + waitMs;
  let lastReplyAt = Date.now();
  while (Date.now() < deadline && Date.now() - lastReplyAt < Math.min(waitMs, 8000)) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { shoppers } = await call<{ shoppers: Shopper[] }>("GET", "/sim/api/state");
    for (const message of shoppers.find((s) => s.id === shopper?.id)?.messages ?? []) {
      if (seen.has(message.id)) continue;
      seen.add(message.id);
      if (message.from !== "bot") continue;
      lastReplyAt = Date.now();
      process.stdout.write(`bot: ${describe(message)}\n`);
    }
  }
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}

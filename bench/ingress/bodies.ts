import { signWebhook, textWebhook } from "@taituri/testing/whatsapp";

export interface BodyOptions {
  /** The app secret ingress checks signatures with. */
  secret: string;
  /** Makes this run's message ids unlike any earlier run's. */
  runId: string;
  /** Size range of the bodies, in bytes (each template aims at a size spread evenly across it). */
  minBytes: number;
  maxBytes: number;
  /** Distinct senders (so conversation keys, so partitions) and sizes: one template each. */
  templates: number;
}

export interface SignedBody {
  body: string;
  signature: string;
}

// Fixed width, so a template's size does not drift as the counter grows.
const SEQ_DIGITS = 10;
const PLACEHOLDER = `@@${"#".repeat(SEQ_DIGITS)}@@`;

/**
 * Signed text-message webhooks of varied sizes from varied senders, each with a message id never
 * used before, so ingress really produces every one of them (nothing is dropped as a retry). Built
 * from templates split around the id, so the load generator spends a string concatenation and one
 * HMAC per request, not a JSON.stringify.
 */
export function webhookBodies(options: BodyOptions): () => SignedBody {
  const random = mulberry32(0x7a17);
  const templates = Array.from({ length: options.templates }, (_, i) => {
    const target =
      options.templates === 1
        ? options.minBytes
        : Math.round(
            options.minBytes + ((options.maxBytes - options.minBytes) * i) / (options.templates - 1),
          );
    const senderOptions = {
      waId: `1555${String(1_000_000 + i).slice(1)}`,
      phoneNumberId: "106540352242922",
      profileName: `Bench ${i}`,
      wamid: `wamid.${options.runId}.${PLACEHOLDER}`,
      timestamp: 1_767_225_600,
    };
    // Bytes around the text once the placeholder has become a counter.
    const envelope = JSON.stringify(textWebhook("", senderOptions)).length - PLACEHOLDER.length + SEQ_DIGITS;
    const text = prose(random, Math.max(0, target - envelope));
    const [before, after] = JSON.stringify(textWebhook(text, senderOptions)).split(PLACEHOLDER);
    if (before === undefined || after === undefined) throw new Error("template lost its placeholder");
    return { before, after };
  });
  let seq = 0;
  return () => {
    seq += 1;
    const template = templates[seq % templates.length];
    if (!template) throw new Error("no template");
    const body = `${template.before}${String(seq).padStart(SEQ_DIGITS, "0")}${template.after}`;
    return { body, signature: signWebhook(body, options.secret) };
  };
}

// Words a shopper might write. Random sequences of them compress about as well as real chat text,
// so a compressing producer would not look better here than in production.
const VOCABULARY = (
  "a an the and or but for with without from to of in on at by my her his their our your this that " +
  "gift present mug shirt poster card frame photo print cup bag hat sticker necklace bracelet book " +
  "birthday anniversary wedding christmas mother father grandmother grandfather sister brother friend " +
  "colleague teacher boss daughter son wife husband girlfriend boyfriend cat dog horse bird garden " +
  "blue red green yellow purple pink black white golden silver pastel bright dark light vintage modern " +
  "funny cute elegant simple bold minimal colourful handmade personal custom name date quote drawing " +
  "please could you would like want need make design show send change add remove bigger smaller " +
  "font style colour background picture text line border corner left right top bottom centre price " +
  "how much when delivery tomorrow today next week fast cheap thanks thank great perfect love nice ok " +
  "yes no maybe not sure again another version one two three more less about around 2 3 5 10 20 50 " +
  "ñandú café naïve crème brûlée 🎁 🎂 ❤️ 😊 👍"
).split(" ");

/** Roughly `bytes` bytes (UTF-8) of random sentences from the vocabulary. */
function prose(random: () => number, bytes: number): string {
  const words: string[] = [];
  let size = 0;
  while (size < bytes) {
    const word = VOCABULARY[Math.floor(random() * VOCABULARY.length)] ?? "gift";
    words.push(word);
    size += Buffer.byteLength(word) + 1;
  }
  let text = words.join(" ");
  while (Buffer.byteLength(text) > bytes) text = text.slice(0, -1);
  return text;
}

/** A small seeded PRNG, so every run sends the same texts. */
function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

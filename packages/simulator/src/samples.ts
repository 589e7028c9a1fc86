import { Resvg } from "@resvg/resvg-js";
import sharp from "sharp";

/** What the shopper's "send an image / a sticker / a voice note" buttons send: real files, small. */
export interface Sample {
  bytes: Buffer;
  mimeType: string;
}

const render = (svg: string) =>
  Buffer.from(new Resvg(svg, { font: { loadSystemFonts: false } }).render().asPng());

/** A photo-like picture (a wrapped gift on a table), as a shopper might send one: PNG. */
export function sampleImage(): Sample {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="360" viewBox="0 0 480 360">
  <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#8fd3ff"/><stop offset="1" stop-color="#e8f6ff"/></linearGradient></defs>
  <rect width="480" height="360" fill="url(#sky)"/>
  <rect y="260" width="480" height="100" fill="#b07a4f"/>
  <rect x="160" y="150" width="160" height="120" rx="6" fill="#e2425c"/>
  <rect x="228" y="150" width="24" height="120" fill="#ffd447"/>
  <rect x="160" y="196" width="160" height="22" fill="#ffd447"/>
  <path d="M240 150 C200 100 170 130 238 150 C310 130 280 100 240 150 Z" fill="#ffd447"/>
  <circle cx="400" cy="70" r="34" fill="#fff3a6"/>
</svg>`;
  return { bytes: render(svg), mimeType: "image/png" };
}

/** A 512×512 WebP sticker (WhatsApp's sticker format): a smiling face on a transparent background. */
export async function sampleSticker(): Promise<Sample> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" viewBox="0 0 512 512">
  <circle cx="256" cy="256" r="220" fill="#ffcc33" stroke="#e0a100" stroke-width="12"/>
  <circle cx="180" cy="210" r="28" fill="#4a2c00"/><circle cx="332" cy="210" r="28" fill="#4a2c00"/>
  <path d="M150 300 Q256 420 362 300" fill="none" stroke="#4a2c00" stroke-width="26" stroke-linecap="round"/>
</svg>`;
  return { bytes: await sharp(render(svg)).webp({ lossless: true }).toBuffer(), mimeType: "image/webp" };
}

/**
 * A voice note as WhatsApp records one (Ogg Opus, mono, 48 kHz): a second of silence, built here
 * page by page (RFC 7845) because no encoder is at hand and silence needs none.
 */
export function sampleVoice(seconds = 1): Sample {
  const serial = 0x5a17;
  const preSkip = 312;
  const head = Buffer.alloc(19);
  head.write("OpusHead", 0, "latin1");
  head.writeUInt8(1, 8); // version
  head.writeUInt8(1, 9); // channels
  head.writeUInt16LE(preSkip, 10);
  head.writeUInt32LE(48_000, 12); // the input's sample rate (informative)
  head.writeInt16LE(0, 16); // output gain
  head.writeUInt8(0, 18); // channel mapping family 0: mono or stereo
  const vendor = Buffer.from("taituri-simulator", "latin1");
  const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
  tags.write("OpusTags", 0, "latin1");
  tags.writeUInt32LE(vendor.length, 8);
  vendor.copy(tags, 12);
  tags.writeUInt32LE(0, 12 + vendor.length); // no user comments
  // One 20 ms frame of silence per packet: TOC 0xF8 (CELT, fullband, 20 ms, one frame), then the
  // two bytes that code a silent frame.
  const frames = Math.max(1, Math.round(seconds * 50));
  const silence = Buffer.from([0xf8, 0xff, 0xfe]);
  const pages: Buffer[] = [
    oggPage({ serial, sequence: 0, granule: 0n, flags: 0x02, packets: [head] }),
    oggPage({ serial, sequence: 1, granule: 0n, flags: 0, packets: [tags] }),
  ];
  // At most 255 segments (here packets) a page.
  for (let sent = 0, sequence = 2; sent < frames; sequence++) {
    const count = Math.min(200, frames - sent);
    sent += count;
    pages.push(
      oggPage({
        serial,
        sequence,
        granule: BigInt(preSkip + sent * 960),
        flags: sent === frames ? 0x04 : 0,
        packets: Array.from({ length: count }, () => silence),
      }),
    );
  }
  return { bytes: Buffer.concat(pages), mimeType: "audio/ogg; codecs=opus" };
}

/** One Ogg page holding whole packets, each under 255 bytes. */
function oggPage(page: {
  serial: number;
  sequence: number;
  granule: bigint;
  flags: number;
  packets: Buffer[];
}) {
  const segments = page.packets.map((packet) => {
    if (packet.length >= 255) throw new Error("oggPage: packets of 255 bytes or more need lacing");
    return packet.length;
  });
  const header = Buffer.alloc(27 + segments.length);
  header.write("OggS", 0, "latin1");
  header.writeUInt8(0, 4);
  header.writeUInt8(page.flags, 5);
  header.writeBigUInt64LE(page.granule, 6);
  header.writeUInt32LE(page.serial, 14);
  header.writeUInt32LE(page.sequence, 18);
  header.writeUInt32LE(0, 22);
  header.writeUInt8(segments.length, 26);
  segments.forEach((length, i) => {
    header.writeUInt8(length, 27 + i);
  });
  const bytes = Buffer.concat([header, ...page.packets]);
  bytes.writeUInt32LE(oggCrc(bytes), 22);
  return bytes;
}

/** Ogg's CRC-32: polynomial 0x04c11db7, not reflected, initial value 0, over the page with its CRC zeroed. */
const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let r = i << 24;
  for (let bit = 0; bit < 8; bit++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
  return r >>> 0;
});

function oggCrc(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ byte) & 0xff] ?? 0)) >>> 0;
  return crc;
}

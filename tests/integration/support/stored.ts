import { Binary, type Db } from "mongodb";

/**
 * A stored value as one searchable text: binary as latin1 (so a phone number inside an image or a
 * GridFS chunk is found), dates as ISO strings, objects as `key=value` pairs. What the erase and
 * retention tests search for data that should be gone.
 */
export function asText(value: unknown): string {
  if (value instanceof Binary) return Buffer.from(value.buffer).toString("latin1");
  if (Buffer.isBuffer(value)) return value.toString("latin1");
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(asText).join("\u0000");
  if (value && typeof value === "object")
    return Object.entries(value)
      .map(([k, v]) => `${k}=${asText(v)}`)
      .join("\u0000");
  return String(value);
}

/** Every document of every collection of `db`, as text (`asText`), by collection, in `_id` order. */
export async function everyDocument(db: Db): Promise<Map<string, string[]>> {
  const all = new Map<string, string[]>();
  for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray())
    all.set(name, (await db.collection(name).find({}).sort({ _id: 1 }).toArray()).map(asText));
  return all;
}

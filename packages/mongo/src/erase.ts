import type { Collection, Document, Filter } from "mongodb";

/** A string as a regular expression that matches it literally (ids hold ".", "+" and "/"). */
export const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Deletes what `filter` matches, or with `dryRun` only counts it; either way returns how many. For
 * a shopper's erasure (`npm run erase`): an operator's command, not a hot path, so a filter FerretDB
 * answers by reading the whole collection (a regex, a field without an index) is acceptable here.
 */
export async function removeMatching<T extends Document>(
  collection: Collection<T>,
  filter: Filter<T>,
  dryRun: boolean,
): Promise<number> {
  if (dryRun) return collection.countDocuments(filter);
  return (await collection.deleteMany(filter)).deletedCount;
}

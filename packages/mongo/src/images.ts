import { type Db, GridFSBucket, MongoRuntimeError } from "mongodb";
import { escapeRegex } from "./erase.ts";

export interface StoredImage {
  bytes: Buffer;
  contentType: string;
  filename: string;
}

/**
 * Generated designs, kept in GridFS (bucket `images`) under ids chosen by the writer, so that a
 * retried write of the same round finds its images instead of storing copies.
 */
export class ImageStore {
  readonly #bucket: GridFSBucket;

  constructor(db: Db, bucketName = "images") {
    this.#bucket = new GridFSBucket(db, { bucketName });
  }

  async put(id: string, image: StoredImage): Promise<void> {
    if (await this.exists(id)) return;
    await new Promise<void>((resolve, reject) => {
      const upload = this.#bucket.openUploadStreamWithId(id as never, image.filename, {
        metadata: { contentType: image.contentType },
      });
      upload.once("finish", () => resolve());
      upload.once("error", reject);
      upload.end(image.bytes);
    });
  }

  async exists(id: string): Promise<boolean> {
    return (
      (
        await this.#bucket
          .find({ _id: id as never })
          .limit(1)
          .toArray()
      ).length > 0
    );
  }

  /**
   * Deletes every image whose id starts with `prefix` (a conversation's: `<conversation>/…`), or
   * with `dryRun` only counts them; returns how many. GridFS deletes a file's chunks with it.
   */
  async removeUnder(prefix: string, dryRun: boolean): Promise<number> {
    const files = await this.#bucket
      .find({ _id: { $regex: `^${escapeRegex(prefix)}` } as never }, { projection: { _id: 1 } })
      .toArray();
    if (!dryRun) for (const file of files) await this.#bucket.delete(file._id);
    return files.length;
  }

  /**
   * Deletes up to `limit` images stored before `before` (their GridFS `uploadDate`), chunks and
   * all, for a retention sweep; returns how many were deleted and how many were found (a full
   * batch means more may wait). An image deleted meanwhile by another sweeper is skipped.
   */
  async removeStoredBefore(before: Date, limit: number): Promise<{ removed: number; examined: number }> {
    const files = await this.#bucket
      .find({ uploadDate: { $lt: before } }, { projection: { _id: 1 } })
      .limit(limit)
      .toArray();
    let removed = 0;
    for (const file of files) {
      try {
        await this.#bucket.delete(file._id);
        removed += 1;
      } catch (error) {
        if (!(error instanceof MongoRuntimeError && /File not found/i.test(error.message))) throw error;
      }
    }
    return { removed, examined: files.length };
  }

  /** The image, or undefined when no image has that id. */
  async get(id: string): Promise<StoredImage | undefined> {
    const [file] = await this.#bucket
      .find({ _id: id as never })
      .limit(1)
      .toArray();
    if (!file) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of this.#bucket.openDownloadStream(id as never)) chunks.push(chunk as Buffer);
    return {
      bytes: Buffer.concat(chunks),
      contentType: String(file.metadata?.contentType ?? "application/octet-stream"),
      filename: file.filename,
    };
  }
}

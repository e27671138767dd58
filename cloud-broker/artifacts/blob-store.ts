import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OutpostError } from '../../protocol/errors/index.js';
import { fsyncDir } from '../../agent/fs/atomic-file.js';

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface PutResult {
  sha256: string;
  size: number;
  /** false when the blob was already stored (the bytes were still checked). */
  created: boolean;
}

/**
 * Content-addressed blobs on the filesystem: `<root>/sha256/<first two hex>/<sha256>`.
 *
 * Invariant: a file at a blob path always has exactly the bytes its name hashes to. Uploads go
 * to `<root>/tmp/` while they are hashed and counted, and are renamed into place only when both
 * the length and the hash are right; any failure removes the temp file.
 */
export class BlobStore {
  readonly root: string;
  private readonly tmpDir: string;

  constructor(root: string) {
    this.root = root;
    this.tmpDir = path.join(root, 'tmp');
  }

  /** Creates the folders and removes temp files a crash may have left. */
  async init(): Promise<void> {
    await fs.mkdir(path.join(this.root, 'sha256'), { recursive: true });
    await fs.rm(this.tmpDir, { recursive: true, force: true });
    await fs.mkdir(this.tmpDir, { recursive: true });
  }

  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256))
      throw new OutpostError('BAD_REQUEST', `"${sha256}" is not a sha256 (64 lowercase hex characters)`, {
        key: 'sha256',
        value: sha256,
      });
    return path.join(this.root, 'sha256', sha256.slice(0, 2), sha256);
  }

  /** The stored size, or null when the blob is absent. */
  async stat(sha256: string): Promise<{ size: number } | null> {
    try {
      const st = await fs.stat(this.pathOf(sha256));
      return { size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Streams exactly `size` bytes from `source` into the blob `sha256`. */
  async put(sha256: string, size: number, source: Readable): Promise<PutResult> {
    const final = this.pathOf(sha256);
    const tmp = path.join(this.tmpDir, `${sha256}.${randomBytes(6).toString('hex')}.part`);
    const hash = createHash('sha256');
    let received = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (received > size) {
          cb(
            new OutpostError(
              'BAD_REQUEST',
              `the upload is longer than its declared size ${size}; send Content-Length equal to the file size`,
              { size },
            ),
          );
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(tmp, { flags: 'wx', flush: true }));
      if (received !== size) {
        throw new OutpostError(
          'BLOB_UPLOAD_INCOMPLETE',
          `the upload of ${sha256} ended after ${received} of ${size} bytes; nothing was stored, upload it again`,
          { sha256, received, size },
        );
      }
      const actual = hash.digest('hex');
      if (actual !== sha256) {
        throw new OutpostError(
          'BLOB_HASH_MISMATCH',
          `the uploaded bytes hash to ${actual}, not ${sha256}; nothing was stored, re-hash the file and upload again`,
          { expected: sha256, actual },
        );
      }
      const existed = (await this.stat(sha256)) !== null;
      await fs.mkdir(path.dirname(final), { recursive: true });
      await fs.rename(tmp, final);
      await fsyncDir(path.dirname(final));
      return { sha256, size, created: !existed };
    } catch (err) {
      await fs.rm(tmp, { force: true });
      if (err instanceof OutpostError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_STREAM_PREMATURE_CLOSE' || e.code === 'ECONNRESET' || e.message === 'aborted') {
        throw new OutpostError(
          'BLOB_UPLOAD_INCOMPLETE',
          `the upload of ${sha256} was cut after ${received} of ${size} bytes; nothing was stored, upload it again`,
          { sha256, received, size },
        );
      }
      throw new OutpostError('IO_ERROR', `storing blob ${sha256} failed: ${e.message}`, { sha256 }, { cause: err });
    }
  }

  /** Names of temp files in flight (tests check that failed uploads leave none). */
  async tempFiles(): Promise<string[]> {
    return fs.readdir(this.tmpDir);
  }
}

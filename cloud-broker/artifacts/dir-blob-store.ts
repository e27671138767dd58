import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OutpostError } from '../../protocol/errors/index.js';
import { fsyncDir } from '../../agent/fs/atomic-file.js';
import { blobNotFound, checkSha256, type BlobStore, type PutResult } from './blob-store.js';
import { isClientCut, UploadMeter } from './upload-meter.js';

/**
 * Content-addressed blobs on the filesystem: `<root>/sha256/<first two hex>/<sha256>` (the
 * fan-out keeps folders small on filesystems that slow down with many entries).
 *
 * Invariant: a file at a blob path always has exactly the bytes its name hashes to. Uploads go
 * to `<root>/tmp/` while they are hashed and counted, and are renamed into place only when both
 * the length and the hash are right; any failure removes the temp file.
 */
export class DirectoryBlobStore implements BlobStore {
  readonly kind = 'directory';
  readonly root: string;
  private readonly tmpDir: string;

  constructor(root: string) {
    this.root = root;
    this.tmpDir = path.join(root, 'tmp');
  }

  get location(): string {
    return this.root;
  }

  /** Creates the folders and removes temp files a crash may have left. */
  async init(): Promise<void> {
    await fs.mkdir(path.join(this.root, 'sha256'), { recursive: true });
    await fs.rm(this.tmpDir, { recursive: true, force: true });
    await fs.mkdir(this.tmpDir, { recursive: true });
  }

  pathOf(sha256: string): string {
    checkSha256(sha256);
    return path.join(this.root, 'sha256', sha256.slice(0, 2), sha256);
  }

  async stat(sha256: string): Promise<{ size: number } | null> {
    try {
      const st = await fs.stat(this.pathOf(sha256));
      return { size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async put(sha256: string, size: number, source: Readable): Promise<PutResult> {
    const final = this.pathOf(sha256);
    const tmp = path.join(this.tmpDir, `${sha256}.${randomBytes(6).toString('hex')}.part`);
    const meter = new UploadMeter(sha256, size);
    try {
      await pipeline(source, meter, createWriteStream(tmp, { flags: 'wx', flush: true }));
      meter.verify();
      const existed = (await this.stat(sha256)) !== null;
      await fs.mkdir(path.dirname(final), { recursive: true });
      await fs.rename(tmp, final);
      await fsyncDir(path.dirname(final));
      return { sha256, size, created: !existed };
    } catch (err) {
      await fs.rm(tmp, { force: true });
      if (err instanceof OutpostError) throw err;
      if (isClientCut(err)) throw meter.incomplete('was cut');
      const e = err as Error;
      throw new OutpostError('IO_ERROR', `storing blob ${sha256} failed: ${e.message}`, { sha256 }, { cause: err });
    }
  }

  async read(sha256: string, start: number, end: number): Promise<Readable> {
    const file = this.pathOf(sha256);
    // Opened before the caller writes its status line, so an absent file is still a clean 404.
    const handle = await fs.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? blobNotFound(sha256) : err;
    });
    return handle.createReadStream({ start, end, autoClose: true });
  }

  async freeBytes(): Promise<number> {
    const st = await fs.statfs(this.root);
    return Number(st.bavail) * Number(st.bsize);
  }

  async uploadsInFlight(): Promise<string[]> {
    return fs.readdir(this.tmpDir);
  }

  async close(): Promise<void> {}
}

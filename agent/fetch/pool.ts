import { chmod, mkdir, readdir, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import { downloadVerified } from './download.js';

/**
 * A content-addressed blob cache (`<cacheDir>/<sha256>`, read-only files) and a bounded pool
 * that fills it. A blob is downloaded at most once per device: the store hard-links cache blobs
 * into version folders, so every installed file is also in the cache under its hash, and a later
 * version (or another model) that lists the same sha256 reuses it without any network transfer.
 * A blob's link count is what GC reads: 1 means no installed version uses it any more.
 */
export interface BlobRef {
  sha256: string;
  size: number;
}

export interface BlobSource {
  /** Cloud base URL; blobs are `GET <baseUrl>/v1/blobs/<sha256>`. */
  baseUrl: string;
  /** Sent with every request, e.g. `{ authorization: 'Bearer <token>' }`. */
  headers?: Record<string, string>;
  /** Overrides the URL of a blob (a mirror or CDN; safe since every byte is verified). */
  urlOf?: (sha256: string) => string;
}

export interface BlobPoolOptions {
  cacheDir: string;
  /** Downloads running at once (default 3). */
  concurrency?: number;
  /** Free space that must remain after all downloads (default 64 MiB). */
  marginBytes?: number;
  /** Skip the free-disk check (tests that must reach a real ENOSPC). Default true. */
  checkFreeSpace?: boolean;
  retries?: number;
  backoffMs?: number;
  log?: Logger;
}

export interface EnsureOptions {
  signal?: AbortSignal;
  /** Aggregate progress over the blobs that need downloading: bytes on disk, bytes needed. */
  onProgress?: (done: number, total: number) => void;
}

export interface EnsureResult {
  downloaded: number;
  reused: number;
  bytesFetched: number;
  /**
   * sha256 of every blob this call downloaded: each was hashed as it streamed in and is, on
   * disk, exactly those bytes. The other (reused) blobs were verified by some earlier call.
   */
  fetched: string[];
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * The device's credentials go only to the cloud itself (same scheme, host and port as
 * `baseUrl`). A mirror or CDN named by a desired state's `blobBase` gets no Authorization: it
 * needs none, since every byte is checked against the signed sha256 and size, and a token sent
 * there would let whoever runs the mirror act as the device (docs/security.md).
 */
export function headersFor(url: string, source: BlobSource): Record<string, string> | undefined {
  const origin = (u: string): string | null => {
    try {
      return new URL(u).origin;
    } catch {
      return null;
    }
  };
  const own = origin(source.baseUrl);
  return own !== null && origin(url) === own ? source.headers : undefined;
}
const PARTIAL_MAX_AGE_MS = 24 * 3600_000;

export class BlobPool {
  readonly cacheDir: string;
  private readonly log: Logger;

  constructor(private readonly opts: BlobPoolOptions) {
    this.cacheDir = opts.cacheDir;
    this.log = moduleLogger(opts.log ?? silentLogger, 'fetch-pool');
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256))
      throw new OutpostError('BAD_REQUEST', `sha256 "${sha256}" must be 64 lowercase hex digits`, { key: 'sha256' });
    return join(this.cacheDir, sha256);
  }

  /** True when the cache holds a complete blob of this hash (verified when it entered). */
  async has(blob: BlobRef): Promise<boolean> {
    const s = await stat(this.pathOf(blob.sha256)).catch(() => null);
    return s?.isFile() === true && s.size === blob.size;
  }

  async freeBytes(): Promise<number> {
    const s = await statfs(this.cacheDir);
    return Number(s.bavail) * Number(s.bsize);
  }

  /** Makes every blob present in the cache, downloading the missing ones in parallel. */
  async ensure(blobs: BlobRef[], source: BlobSource, opts: EnsureOptions = {}): Promise<EnsureResult> {
    await mkdir(this.cacheDir, { recursive: true, mode: 0o750 });
    const unique = new Map<string, BlobRef>();
    for (const b of blobs) unique.set(b.sha256, b);
    const missing: BlobRef[] = [];
    let pendingPartial = 0;
    for (const b of unique.values()) {
      if (await this.has(b)) continue;
      missing.push(b);
      pendingPartial += Math.min(b.size, (await stat(this.pathOf(b.sha256) + '.part').catch(() => null))?.size ?? 0);
    }
    const result: EnsureResult = { downloaded: 0, reused: unique.size - missing.length, bytesFetched: 0, fetched: [] };
    if (missing.length === 0) return result;

    const total = missing.reduce((n, b) => n + b.size, 0);
    if (this.opts.checkFreeSpace !== false) await this.checkSpace(total - pendingPartial);

    const inner = new AbortController();
    const onOuterAbort = (): void => inner.abort();
    opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
    if (opts.signal?.aborted) inner.abort();
    const done = new Map<string, number>();
    const report = (): void =>
      opts.onProgress?.(
        [...done.values()].reduce((a, b) => a + b, 0),
        total,
      );
    const queue = [...missing];
    let firstError: unknown = null;
    const worker = async (): Promise<void> => {
      for (let b = queue.shift(); b && !firstError; b = queue.shift()) {
        const sha = b.sha256;
        try {
          const url = source.urlOf ? source.urlOf(sha) : `${source.baseUrl.replace(/\/+$/, '')}/v1/blobs/${sha}`;
          const r = await downloadVerified({
            url,
            headers: headersFor(url, source),
            sha256: sha,
            size: b.size,
            dest: this.pathOf(sha),
            signal: inner.signal,
            retries: this.opts.retries,
            backoffMs: this.opts.backoffMs,
            log: this.log,
            onProgress: (d) => {
              done.set(sha, d);
              report();
            },
          });
          // The same inode becomes the installed file (hard link): agent user and group only, read-only.
          await chmod(this.pathOf(sha), 0o440);
          result.downloaded++;
          result.bytesFetched += r.bytesFetched;
          result.fetched.push(sha);
        } catch (err) {
          // The first real failure wins; the aborts it causes in the other workers are noise.
          if (!firstError) firstError = err;
          inner.abort();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.opts.concurrency ?? 3, missing.length) }, worker));
    } finally {
      opts.signal?.removeEventListener('abort', onOuterAbort);
    }
    if (firstError) throw firstError;
    this.log.info(
      { downloaded: result.downloaded, reused: result.reused, bytesFetched: result.bytesFetched },
      'blobs ready',
    );
    return result;
  }

  private async checkSpace(needed: number): Promise<void> {
    const margin = this.opts.marginBytes ?? 64 * 1024 * 1024;
    const free = await this.freeBytes();
    if (free < needed + margin) {
      throw new OutpostError(
        'FETCH_NO_SPACE',
        `need ${needed} bytes plus a ${margin}-byte margin in ${this.cacheDir} but only ${free} are free; free disk space or keep fewer versions`,
        { needed, margin, free, dir: this.cacheDir },
      );
    }
  }

  /**
   * Deletes blobs that no installed file links to (link count 1) and partial downloads untouched
   * for a day. Must not run while `ensure` runs (the store serialises both).
   */
  async gc(
    opts: { partialMaxAgeMs?: number; now?: number } = {},
  ): Promise<{ blobs: number; partials: number; bytes: number }> {
    const out = { blobs: 0, partials: 0, bytes: 0 };
    const names = await readdir(this.cacheDir).catch(() => [] as string[]);
    const now = opts.now ?? Date.now();
    for (const name of names) {
      const p = join(this.cacheDir, name);
      const s = await stat(p).catch(() => null);
      if (!s?.isFile()) continue;
      const isBlob = SHA256.test(name);
      const stalePartial = !isBlob && now - s.mtimeMs > (opts.partialMaxAgeMs ?? PARTIAL_MAX_AGE_MS);
      if ((isBlob && s.nlink <= 1) || stalePartial) {
        await unlink(p).catch(() => undefined);
        out.bytes += s.size;
        if (isBlob) out.blobs++;
        else out.partials++;
      }
    }
    if (out.blobs + out.partials > 0) this.log.info(out, 'cache collected');
    return out;
  }
}

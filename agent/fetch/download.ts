import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, stat, truncate, unlink, type FileHandle } from 'node:fs/promises';
import type http from 'node:http';
import type https from 'node:https';
import { dirname } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import { fsyncDir } from '../fs/atomic-file.js';
import { isNoSpace } from './fs-util.js';
import { requestOnce, type OpenResponse } from './http.js';
import { pump } from './pump.js';

/**
 * One verified, resumable download: nothing unverified is ever installed (docs/security.md).
 *
 * Invariants:
 * - `dest` only ever appears by rename of a partial file whose length and sha256 equal the signed
 *   ones; a reader never sees an unverified or half-written `dest`.
 * - The partial never grows past the signed `size`: a longer announcement or body aborts the
 *   download ("endless data").
 * - A resume continues the hash from the bytes already on disk (they are re-read, never trusted
 *   from memory), and a `200` answer to a range request truncates the partial instead of appending.
 */
export interface DownloadRequest {
  url: string;
  headers?: Record<string, string>;
  /** Lowercase hex sha256 from the signed metadata. */
  sha256: string;
  /** Exact length in bytes from the signed metadata. */
  size: number;
  dest: string;
  /** Where the bytes collect until verified; default `dest + '.part'`. */
  partial?: string;
  signal?: AbortSignal;
  /** Called as bytes arrive: bytes of the file now on disk, and the signed size. */
  onProgress?: (done: number, size: number) => void;
  log?: Logger;
  /** Consecutive failed attempts without progress before giving up (default 5). */
  retries?: number;
  /** First backoff delay in ms, doubled per failure with jitter, capped at 10 s (default 200). */
  backoffMs?: number;
  /** Socket idle timeout in ms (default 30 s). */
  idleTimeoutMs?: number;
  agent?: http.Agent | https.Agent;
}

export interface DownloadResult {
  /** Bytes received over the network by this call (including ones thrown away by a restart). */
  bytesFetched: number;
  /** True when bytes already on disk were kept and continued with a range request. */
  resumed: boolean;
}

const SHA256 = /^[0-9a-f]{64}$/;
const MAX_BACKOFF_MS = 10_000;

/** An attempt's failure that a later attempt may fix (the partial is kept). */
class Retryable extends Error {
  constructor(readonly outpost: OutpostError) {
    super(outpost.message);
  }
}

export async function downloadVerified(req: DownloadRequest): Promise<DownloadResult> {
  if (!SHA256.test(req.sha256)) {
    throw new OutpostError('BAD_REQUEST', `sha256 "${req.sha256}" must be 64 lowercase hex digits`, { key: 'sha256' });
  }
  if (!Number.isSafeInteger(req.size) || req.size < 0) {
    throw new OutpostError('BAD_REQUEST', `size ${req.size} must be a non-negative integer`, { key: 'size' });
  }
  const log = moduleLogger(req.log ?? silentLogger, 'fetch', { sha256: req.sha256 });
  const partial = req.partial ?? `${req.dest}.part`;
  const retries = req.retries ?? 5;
  const state = { bytesFetched: 0, resumed: false };
  let failures = 0;
  for (;;) {
    throwIfAborted(req.signal, req);
    const before = state.bytesFetched;
    try {
      await attempt(req, partial, state, log);
      await rename(partial, req.dest);
      await fsyncDir(dirname(req.dest));
      log.debug({ bytesFetched: state.bytesFetched, resumed: state.resumed }, 'download verified');
      return state;
    } catch (err) {
      if (!(err instanceof Retryable)) throw err;
      if (req.signal?.aborted) throwIfAborted(req.signal, req);
      // Progress resets the budget: a link that is cut every few MB still finishes a large file.
      failures = state.bytesFetched > before ? 1 : failures + 1;
      if (failures > retries) throw err.outpost;
      const delay = Math.min(MAX_BACKOFF_MS, (req.backoffMs ?? 200) * 2 ** (failures - 1)) * (0.5 + Math.random() / 2);
      log.warn({ err: err.outpost.message, failures, delayMs: Math.round(delay) }, 'download attempt failed; retrying');
      await sleep(delay, req.signal);
    }
  }
}

async function attempt(req: DownloadRequest, partial: string, state: DownloadResult, log: Logger): Promise<void> {
  let offset = await sizeOf(partial);
  if (offset > req.size) {
    // Not ours to continue: a partial longer than the signed file cannot be a prefix of it.
    await truncate(partial, 0);
    offset = 0;
  }
  const hash = createHash('sha256');
  if (offset > 0) await hashFile(partial, hash);
  if (offset === req.size) return finish(req, partial, hash, offset);

  const headers: Record<string, string> = { ...req.headers };
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    headers['if-range'] = `"${req.sha256}"`;
  }
  let res: OpenResponse;
  try {
    res = await requestOnce(req.url, headers, {
      signal: req.signal,
      idleTimeoutMs: req.idleTimeoutMs ?? 30_000,
      agent: req.agent,
    });
  } catch (err) {
    throw networkOrAbort(err, req);
  }
  try {
    if (res.status === 200 && offset > 0) {
      log.info({ offset }, 'server answered the range request with 200: restarting the file');
      offset = 0;
      state.resumed = false;
      await truncate(partial, 0);
      return await receive(req, partial, res, createHash('sha256'), 0, state);
    }
    if (res.status === 206 && offset > 0) {
      const start = parseContentRangeStart(res.headers['content-range']);
      if (start !== offset) {
        await removeQuietly(partial);
        throw new OutpostError(
          'FETCH_HTTP_STATUS',
          `blob server answered bytes=${offset}- with Content-Range "${res.headers['content-range'] ?? ''}"; the partial file was deleted and the next attempt starts over`,
          { status: 206, url: req.url },
        );
      }
      state.resumed = true;
      return await receive(req, partial, res, hash, offset, state);
    }
    if (res.status === 200) return await receive(req, partial, res, hash, 0, state);
    const status = res.status;
    const retry = status >= 500 || status === 429 || status === 408;
    if (status === 416) await removeQuietly(partial);
    const e = new OutpostError(
      'FETCH_HTTP_STATUS',
      `blob server answered HTTP ${status} for ${req.url}${status === 401 || status === 403 ? ': check the device token' : status === 404 ? ': the blob is not in the store' : ''}`,
      { status, url: req.url },
    );
    throw retry ? new Retryable(e) : e;
  } finally {
    res.close();
  }
}

/** Streams the body into the partial, bounded by the signed size, then verifies. */
async function receive(
  req: DownloadRequest,
  partial: string,
  res: OpenResponse,
  hash: Hash,
  offset: number,
  state: DownloadResult,
): Promise<void> {
  const expected = req.size - offset;
  const announced = res.headers['content-length'];
  if (announced !== undefined) {
    const n = Number(announced);
    if (n > expected) {
      await removeQuietly(partial);
      throw new OutpostError(
        'FETCH_TOO_LONG',
        `blob server announced ${n} bytes but only ${expected} remain of the signed ${req.size}; refusing endless data`,
        { url: req.url, announced: n, expected },
      );
    }
    if (n < expected) {
      await removeQuietly(partial);
      throw new OutpostError(
        'FETCH_TRUNCATED',
        `blob server announced ${n} bytes but ${expected} remain of the signed ${req.size}`,
        { url: req.url, announced: n, expected },
      );
    }
  }
  let fh: FileHandle;
  try {
    fh = await open(partial, offset === 0 ? 'w' : 'a');
  } catch (err) {
    throw ioError(err, partial);
  }
  let done = offset;
  // `received` runs ahead of `done` (written) while chunks wait in the write queue.
  let received = offset;
  const writev = async (chunks: Buffer[]): Promise<void> => {
    done += await writeAllv(fh, chunks, partial);
    req.onProgress?.(done, req.size);
  };
  try {
    try {
      await pump(res.body, {
        accept(chunk) {
          state.bytesFetched += chunk.length;
          if (received + chunk.length > req.size) {
            throw new OutpostError(
              'FETCH_TOO_LONG',
              `blob server sent more than the signed ${req.size} bytes; refusing endless data`,
              { url: req.url, size: req.size },
            );
          }
          received += chunk.length;
          hash.update(chunk);
        },
        write: (chunk) => writev([chunk]),
        writev,
      });
    } catch (err) {
      if (err instanceof OutpostError) {
        // Too long or a full disk: the partial is not worth keeping (and its space is needed).
        await fh.close().catch(() => undefined);
        await removeQuietly(partial);
        throw err;
      }
      // Keep what arrived: it is hashed again on the next attempt before being continued.
      await fh.sync().catch(() => undefined);
      throw networkOrAbort(err, req);
    }
    if (done < req.size) {
      await fh.close().catch(() => undefined);
      await removeQuietly(partial);
      throw new OutpostError(
        'FETCH_TRUNCATED',
        `blob server ended the file after ${done} of the signed ${req.size} bytes`,
        { url: req.url, received: done, size: req.size },
      );
    }
    await fh.sync().catch(async (err: unknown) => {
      await fh.close().catch(() => undefined);
      await removeQuietly(partial);
      throw ioError(err, partial);
    });
  } finally {
    await fh.close().catch(() => undefined);
  }
  return finish(req, partial, hash, done);
}

async function finish(req: DownloadRequest, partial: string, hash: Hash, length: number): Promise<void> {
  const digest = hash.digest('hex');
  if (length !== req.size || digest !== req.sha256) {
    await removeQuietly(partial);
    throw new OutpostError(
      'FETCH_HASH_MISMATCH',
      `downloaded file has sha256 ${digest} but the signed metadata says ${req.sha256}; the partial file was deleted`,
      { url: req.url, expected: req.sha256, actual: digest },
    );
  }
}

/** Writes `chunks` in order with as few writev calls as the kernel allows; returns the byte count. */
async function writeAllv(fh: FileHandle, chunks: Buffer[], path: string): Promise<number> {
  let rest = chunks;
  let total = 0;
  while (rest.length > 0) {
    let n: number;
    try {
      n = (await fh.writev(rest)).bytesWritten;
    } catch (err) {
      throw ioError(err, path);
    }
    if (n === 0)
      throw new OutpostError('IO_ERROR', `cannot write ${path}: the file system accepted no bytes`, { path });
    total += n;
    // A short write (the disk filling up) leaves a tail; writing it again surfaces the real error.
    let i = 0;
    while (i < rest.length && n >= rest[i].length) n -= rest[i++].length;
    rest = i < rest.length && n > 0 ? [rest[i].subarray(n), ...rest.slice(i + 1)] : rest.slice(i);
  }
  return total;
}

function ioError(err: unknown, path: string): OutpostError {
  if (isNoSpace(err)) {
    return new OutpostError(
      'FETCH_NO_SPACE',
      `no space left (or the file-size limit was reached) while writing ${path}; free space on that filesystem`,
      { path },
      { cause: err },
    );
  }
  return new OutpostError('IO_ERROR', `cannot write ${path}: ${(err as Error).message}`, { path }, { cause: err });
}

function networkOrAbort(err: unknown, req: DownloadRequest): Error {
  if (err instanceof OutpostError) return err;
  if (req.signal?.aborted) return abortError(req);
  return new Retryable(
    new OutpostError(
      'FETCH_NETWORK',
      `download from ${req.url} failed: ${(err as Error).message}`,
      { url: req.url },
      { cause: err },
    ),
  );
}

function abortError(req: DownloadRequest): OutpostError {
  return new OutpostError(
    'FETCH_ABORTED',
    `download of ${req.sha256} was cancelled; the partial file is kept for resuming`,
    { url: req.url },
  );
}

function throwIfAborted(signal: AbortSignal | undefined, req: DownloadRequest): void {
  if (signal?.aborted) throw abortError(req);
}

function parseContentRangeStart(v: string | undefined): number | null {
  const m = v ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim()) : null;
  return m ? Number(m[1]) : null;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

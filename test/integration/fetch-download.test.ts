import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { downloadVerified, type DownloadRequest } from '../../agent/fetch/index.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { startBlobServer, type BlobServer } from '../helpers/blob-server.js';

// One read of a socket is at most 64 KiB here; "refetched less than a chunk" is the resume claim.
const CHUNK = 64 * 1024;
const SIZE = 1024 * 1024 + 123;

let server: BlobServer;
let dir: string;
let blob: Buffer;
let sha: string;

beforeAll(async () => {
  server = await startBlobServer();
  blob = randomBytes(SIZE);
  sha = server.add(blob);
});
afterAll(() => server.close());
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-fetch-'));
  server.misbehave({});
  server.requests.length = 0;
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function req(extra: Partial<DownloadRequest> = {}): DownloadRequest {
  return { url: server.blobUrl(sha), sha256: sha, size: SIZE, dest: join(dir, 'blob'), backoffMs: 1, ...extra };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    return (err as OutpostError).code;
  }
  throw new Error('expected the download to fail');
}

describe('downloadVerified', () => {
  it('downloads, verifies and renames into dest', async () => {
    const progress: number[] = [];
    const r = await downloadVerified(req({ onProgress: (d) => progress.push(d) }));
    expect(r).toEqual({ bytesFetched: SIZE, resumed: false });
    expect((await readFile(join(dir, 'blob'))).equals(blob)).toBe(true);
    expect(existsSync(join(dir, 'blob.part'))).toBe(false);
    expect(progress.at(-1)).toBe(SIZE);
  });

  it('resumes after a cut with Range and If-Range, refetching less than one chunk', async () => {
    server.misbehave({ cutAfter: 300_000, cutTimes: 1 });
    const before = server.bytesServed();
    const r = await downloadVerified(req());
    expect(r.resumed).toBe(true);
    expect((await readFile(join(dir, 'blob'))).equals(blob)).toBe(true);
    const twice = server.bytesServed() - before - SIZE;
    expect(twice).toBeGreaterThanOrEqual(0);
    expect(twice).toBeLessThan(CHUNK);
    expect(r.bytesFetched - SIZE).toBeLessThan(CHUNK);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1].range).toMatch(/^bytes=\d+-$/);
    expect(Number(server.requests[1].range!.slice(6, -1))).toBeGreaterThan(300_000 - CHUNK);
    expect(server.requests[1].ifRange).toBe(`"${sha}"`);
  });

  it('survives the connection being cut repeatedly mid-file', async () => {
    server.misbehave({ cutAfter: 150_000 });
    const r = await downloadVerified(req({ retries: 2 }));
    expect(r.resumed).toBe(true);
    expect(server.requests.length).toBeGreaterThanOrEqual(7);
    expect((await readFile(join(dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('treats a 200 answer to a range request as a restart, not an append', async () => {
    server.misbehave({ cutAfter: 200_000, cutTimes: 1, ignoreRange: true });
    const r = await downloadVerified(req());
    expect(server.requests[1].range).toBeDefined();
    expect(server.requests[1].status).toBe(200);
    expect(r.resumed).toBe(false);
    expect((await stat(join(dir, 'blob'))).size).toBe(SIZE);
    expect((await readFile(join(dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('rejects a flipped byte and deletes the partial', async () => {
    server.misbehave({ flipByteAt: 5000 });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_HASH_MISMATCH');
    expect(existsSync(join(dir, 'blob'))).toBe(false);
    expect(existsSync(join(dir, 'blob.part'))).toBe(false);
  });

  it('rejects a truncated file, announced or not', async () => {
    server.misbehave({ truncateTo: 1000 });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_TRUNCATED');
    server.misbehave({ truncateTo: 1000, chunked: true });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_TRUNCATED');
    expect(existsSync(join(dir, 'blob.part'))).toBe(false);
    expect(existsSync(join(dir, 'blob'))).toBe(false);
  });

  it('refuses a file longer than signed before and while streaming (endless data)', async () => {
    server.misbehave({ extra: Buffer.alloc(10) });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_TOO_LONG');
    server.misbehave({ extra: randomBytes(5 * CHUNK), chunked: true });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_TOO_LONG');
    expect(existsSync(join(dir, 'blob.part'))).toBe(false);
    expect(existsSync(join(dir, 'blob'))).toBe(false);
  });

  it('rejects a wrong Content-Length', async () => {
    server.misbehave({ contentLength: SIZE + 1 });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_TOO_LONG');
    server.misbehave({ contentLength: SIZE - 1 });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_TRUNCATED');
  });

  it('stops on abort, keeps the partial, and a later call resumes it', async () => {
    server.misbehave({ pieceSize: 16 * 1024, delayMs: 10 });
    const ac = new AbortController();
    const p = downloadVerified(req({ signal: ac.signal, onProgress: (d) => d > 100_000 && ac.abort() }));
    expect(await codeOf(p)).toBe('FETCH_ABORTED');
    const kept = (await stat(join(dir, 'blob.part'))).size;
    expect(kept).toBeGreaterThan(100_000);
    server.misbehave({});
    const r = await downloadVerified(req());
    expect(r.resumed).toBe(true);
    expect(r.bytesFetched).toBe(SIZE - kept);
    expect((await readFile(join(dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('maps HTTP statuses: 404 is final, 503 is retried then reported', async () => {
    server.misbehave({ status: 404 });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_HTTP_STATUS');
    expect(server.requests).toHaveLength(1);
    server.requests.length = 0;
    server.misbehave({ status: 503 });
    expect(await codeOf(downloadVerified(req({ retries: 2 })))).toBe('FETCH_HTTP_STATUS');
    expect(server.requests).toHaveLength(3);
  });

  it('sends the caller headers (bearer token)', async () => {
    server.misbehave({ token: 's3cret' });
    expect(await codeOf(downloadVerified(req()))).toBe('FETCH_HTTP_STATUS');
    await downloadVerified(req({ headers: { authorization: 'Bearer s3cret' } }));
    expect((await readFile(join(dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('reports a network error after bounded retries', async () => {
    const gone = await startBlobServer();
    const url = gone.blobUrl(sha);
    await gone.close();
    expect(await codeOf(downloadVerified(req({ url, retries: 2 })))).toBe('FETCH_NETWORK');
  });

  it('restarts when the partial on disk is longer than the signed size', async () => {
    await writeFile(join(dir, 'blob.part'), randomBytes(SIZE + 5));
    const r = await downloadVerified(req());
    expect(r.resumed).toBe(false);
    expect((await readFile(join(dir, 'blob'))).equals(blob)).toBe(true);
  });
});

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { downloadVerified, type DownloadRequest } from '../../agent/fetch/index.js';
import { useBlobFixture } from '../helpers/blob-fixture.js';
import { startBlobServer } from '../helpers/blob-server.js';
import { codeOfRejection } from '../helpers/error-code.js';

// One read of a socket is at most 64 KiB here; "refetched less than a chunk" is the resume claim.
const CHUNK = 64 * 1024;
const SIZE = 1024 * 1024 + 123;

const fx = useBlobFixture('outpost-fetch-');
let blob: Buffer;
let sha: string;

beforeAll(() => {
  blob = randomBytes(SIZE);
  sha = fx.server.add(blob);
});

function req(extra: Partial<DownloadRequest> = {}): DownloadRequest {
  return { url: fx.server.blobUrl(sha), sha256: sha, size: SIZE, dest: join(fx.dir, 'blob'), backoffMs: 1, ...extra };
}

describe('downloadVerified', () => {
  it('downloads, verifies and renames into dest', async () => {
    const progress: number[] = [];
    const r = await downloadVerified(req({ onProgress: (d) => progress.push(d) }));
    expect(r).toEqual({ bytesFetched: SIZE, resumed: false });
    expect((await readFile(join(fx.dir, 'blob'))).equals(blob)).toBe(true);
    expect(existsSync(join(fx.dir, 'blob.part'))).toBe(false);
    expect(progress.at(-1)).toBe(SIZE);
  });

  it('resumes after a cut with Range and If-Range, refetching less than one chunk', async () => {
    fx.server.misbehave({ cutAfter: 300_000, cutTimes: 1 });
    const before = fx.server.bytesServed();
    const r = await downloadVerified(req());
    expect(r.resumed).toBe(true);
    expect((await readFile(join(fx.dir, 'blob'))).equals(blob)).toBe(true);
    const twice = fx.server.bytesServed() - before - SIZE;
    expect(twice).toBeGreaterThanOrEqual(0);
    expect(twice).toBeLessThan(CHUNK);
    expect(r.bytesFetched - SIZE).toBeLessThan(CHUNK);
    expect(fx.server.requests).toHaveLength(2);
    expect(fx.server.requests[1].range).toMatch(/^bytes=\d+-$/);
    expect(Number(fx.server.requests[1].range!.slice(6, -1))).toBeGreaterThan(300_000 - CHUNK);
    expect(fx.server.requests[1].ifRange).toBe(`"${sha}"`);
  });

  it('survives the connection being cut repeatedly mid-file', async () => {
    fx.server.misbehave({ cutAfter: 150_000 });
    const r = await downloadVerified(req({ retries: 2 }));
    expect(r.resumed).toBe(true);
    expect(fx.server.requests.length).toBeGreaterThanOrEqual(7);
    expect((await readFile(join(fx.dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('treats a 200 answer to a range request as a restart, not an append', async () => {
    fx.server.misbehave({ cutAfter: 200_000, cutTimes: 1, ignoreRange: true });
    const r = await downloadVerified(req());
    expect(fx.server.requests[1].range).toBeDefined();
    expect(fx.server.requests[1].status).toBe(200);
    expect(r.resumed).toBe(false);
    expect((await stat(join(fx.dir, 'blob'))).size).toBe(SIZE);
    expect((await readFile(join(fx.dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('rejects a flipped byte and deletes the partial', async () => {
    fx.server.misbehave({ flipByteAt: 5000 });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_HASH_MISMATCH');
    expect(existsSync(join(fx.dir, 'blob'))).toBe(false);
    expect(existsSync(join(fx.dir, 'blob.part'))).toBe(false);
  });

  it('rejects a truncated file, announced or not', async () => {
    fx.server.misbehave({ truncateTo: 1000 });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_TRUNCATED');
    fx.server.misbehave({ truncateTo: 1000, chunked: true });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_TRUNCATED');
    expect(existsSync(join(fx.dir, 'blob.part'))).toBe(false);
    expect(existsSync(join(fx.dir, 'blob'))).toBe(false);
  });

  it('refuses a file longer than signed before and while streaming (endless data)', async () => {
    fx.server.misbehave({ extra: Buffer.alloc(10) });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_TOO_LONG');
    fx.server.misbehave({ extra: randomBytes(5 * CHUNK), chunked: true });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_TOO_LONG');
    expect(existsSync(join(fx.dir, 'blob.part'))).toBe(false);
    expect(existsSync(join(fx.dir, 'blob'))).toBe(false);
  });

  it('rejects a wrong Content-Length', async () => {
    fx.server.misbehave({ contentLength: SIZE + 1 });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_TOO_LONG');
    fx.server.misbehave({ contentLength: SIZE - 1 });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_TRUNCATED');
  });

  it('stops on abort, keeps the partial, and a later call resumes it', async () => {
    fx.server.misbehave({ pieceSize: 16 * 1024, delayMs: 10 });
    const ac = new AbortController();
    const p = downloadVerified(req({ signal: ac.signal, onProgress: (d) => d > 100_000 && ac.abort() }));
    expect(await codeOfRejection(p)).toBe('FETCH_ABORTED');
    const kept = (await stat(join(fx.dir, 'blob.part'))).size;
    expect(kept).toBeGreaterThan(100_000);
    fx.server.misbehave({});
    const r = await downloadVerified(req());
    expect(r.resumed).toBe(true);
    expect(r.bytesFetched).toBe(SIZE - kept);
    expect((await readFile(join(fx.dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('maps HTTP statuses: 404 is final, 503 is retried then reported', async () => {
    fx.server.misbehave({ status: 404 });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_HTTP_STATUS');
    expect(fx.server.requests).toHaveLength(1);
    fx.server.requests.length = 0;
    fx.server.misbehave({ status: 503 });
    expect(await codeOfRejection(downloadVerified(req({ retries: 2 })))).toBe('FETCH_HTTP_STATUS');
    expect(fx.server.requests).toHaveLength(3);
  });

  it('sends the caller headers (bearer token)', async () => {
    fx.server.misbehave({ token: 's3cret' });
    expect(await codeOfRejection(downloadVerified(req()))).toBe('FETCH_HTTP_STATUS');
    await downloadVerified(req({ headers: { authorization: 'Bearer s3cret' } }));
    expect((await readFile(join(fx.dir, 'blob'))).equals(blob)).toBe(true);
  });

  it('reports a network error after bounded retries', async () => {
    const gone = await startBlobServer();
    const url = gone.blobUrl(sha);
    await gone.close();
    expect(await codeOfRejection(downloadVerified(req({ url, retries: 2 })))).toBe('FETCH_NETWORK');
  });

  it('restarts when the partial on disk is longer than the signed size', async () => {
    await writeFile(join(fx.dir, 'blob.part'), randomBytes(SIZE + 5));
    const r = await downloadVerified(req());
    expect(r.resumed).toBe(false);
    expect((await readFile(join(fx.dir, 'blob'))).equals(blob)).toBe(true);
  });
});

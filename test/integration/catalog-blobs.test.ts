import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { startS3rver, type S3Server } from '../helpers/engines/s3rver.js';
import { testDatabase } from '../helpers/test-db.js';

// Blob upload and Range serving against a real cloud on port 0, the same suite on each blob
// store: real files in the data dir, and an S3 bucket on a real S3-API server (s3rver).
const BLOB = randomBytes(256 * 1024 + 17);
const SHA = createHash('sha256').update(BLOB).digest('hex');
const ETAG = `"${SHA}"`;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Waits for the server to reach a state; no timing is asserted, the test timeout bounds it. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

describe.each(['directory', 's3'] as const)('blobs on the %s store', (kind) => {
  let dir: string;
  let cloud: Cloud;
  let token: string;
  let client: CloudClient;
  let s3: S3Server | undefined;
  // What the cloud logs, kept to check that nothing normal is logged as a failure.
  const failures: { msg: string; path?: string }[] = [];
  const requestsEnded: { method?: string; path?: string }[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const e = JSON.parse(line) as { level: number; msg: string; method?: string; path?: string };
          if (e.level >= 50) failures.push({ msg: e.msg, path: e.path });
          if (e.msg === 'request') requestsEnded.push({ method: e.method, path: e.path });
        }
        done();
      },
    }),
  );

  async function get(
    headers: Record<string, string>,
    method = 'GET',
  ): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const r = await fetch(client.blobUrl(SHA), { method, headers: { authorization: `Bearer ${token}`, ...headers } });
    return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
  }

  /** The names of the stored blobs, read from the store's own medium (folder or bucket). */
  async function blobFiles(): Promise<string[]> {
    if (s3) return (await s3.keys('blobs/')).map((k) => k.slice('blobs/sha256/'.length));
    const out: string[] = [];
    const root = path.join(dir, 'blobs', 'sha256');
    for (const d of await fs.readdir(root)) out.push(...(await fs.readdir(path.join(root, d))));
    return out;
  }

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-blobs-'));
    if (kind === 's3') s3 = await startS3rver(dir);
    cloud = await startCloud({
      dataDir: dir,
      httpPort: 0,
      database: await testDatabase(),
      log,
      blobStore: s3 && {
        kind: 's3',
        bucket: s3.bucket,
        prefix: 'blobs/',
        endpoint: s3.url,
        forcePathStyle: true,
        credentials: s3.credentials,
      },
    });
    expect(cloud.blobs.kind).toBe(kind);
    token = (await fs.readFile(cloud.adminTokenFile, 'utf8')).trim();
    client = new CloudClient({ url: cloud.httpUrl, token });
    const seen: number[] = [];
    expect(
      await client.putBlob(SHA, BLOB.length, Readable.from([BLOB.subarray(0, 1000), BLOB.subarray(1000)]), (sent) =>
        seen.push(sent),
      ),
    ).toEqual({ sha256: SHA, size: BLOB.length });
    expect(seen.at(-1)).toBe(BLOB.length);
  });

  afterAll(async () => {
    await cloud?.close();
    await s3?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('blob serving', () => {
    it('serves the whole blob with ETag and Accept-Ranges', async () => {
      const r = await get({});
      expect(r.status).toBe(200);
      expect(r.headers.get('etag')).toBe(ETAG);
      expect(r.headers.get('accept-ranges')).toBe('bytes');
      expect(r.body.equals(BLOB)).toBe(true);
      const h = await get({}, 'HEAD');
      expect(h.status).toBe(200);
      expect(h.headers.get('content-length')).toBe(String(BLOB.length));
    });

    it.each([
      ['bytes=0-99', 0, 99],
      ['bytes=1000-', 1000, BLOB.length - 1],
      ['bytes=-4096', BLOB.length - 4096, BLOB.length - 1],
      [`bytes=${BLOB.length - 10}-${BLOB.length + 5000}`, BLOB.length - 10, BLOB.length - 1],
    ])('answers %s with 206 and exactly those bytes', async (range, start, end) => {
      const r = await get({ range });
      expect(r.status).toBe(206);
      expect(r.headers.get('content-range')).toBe(`bytes ${start}-${end}/${BLOB.length}`);
      expect(r.body.equals(BLOB.subarray(start, end + 1))).toBe(true);
    });

    it('answers 416 with the size for a range past the end', async () => {
      const r = await get({ range: `bytes=${BLOB.length}-` });
      expect(r.status).toBe(416);
      expect(r.headers.get('content-range')).toBe(`bytes */${BLOB.length}`);
      expect(JSON.parse(r.body.toString()).code).toBe('HTTP_RANGE_NOT_SATISFIABLE');
    });

    it('answers a full 200 when If-Range names another ETag, 206 when it matches', async () => {
      const other = await get({ range: 'bytes=100-', 'if-range': '"0000"' });
      expect(other.status).toBe(200);
      expect(other.body.equals(BLOB)).toBe(true);
      const same = await get({ range: 'bytes=100-', 'if-range': ETAG });
      expect(same.status).toBe(206);
      expect(same.body.equals(BLOB.subarray(100))).toBe(true);
    });

    it('answers 404 BLOB_NOT_FOUND for an absent blob and 400 for a malformed hash', async () => {
      await expect(client.hasBlob('f'.repeat(64))).resolves.toBe(false);
      const r = await fetch(client.blobUrl('f'.repeat(64)), { headers: client.authHeaders() });
      expect(r.status).toBe(404);
      expect(((await r.json()) as { code: string }).code).toBe('BLOB_NOT_FOUND');
      const bad = await fetch(`${cloud.httpUrl}/v1/blobs/..%2F..%2Fadmin.token`, { headers: client.authHeaders() });
      expect(bad.status).toBe(400);
    });
  });

  describe('blob upload', () => {
    it('refuses bytes that hash differently and leaves no blob and no temp file', async () => {
      const data = Buffer.from('these bytes are not what the URL says');
      const claimed = sha(Buffer.from('something else'));
      await expect(client.putBlob(claimed, data.length, Readable.from([data]))).rejects.toSatisfy(
        (e: unknown) => e instanceof OutpostError && e.code === 'BLOB_HASH_MISMATCH',
      );
      expect(await cloud.blobs.stat(claimed)).toBeNull();
      expect(await cloud.blobs.uploadsInFlight()).toEqual([]);
      expect(await blobFiles()).toEqual([SHA]);
    });

    it('refuses an upload without Content-Length (411)', async () => {
      const data = Buffer.from('chunked upload');
      const r = await fetch(client.blobUrl(sha(data)), {
        method: 'PUT',
        headers: client.authHeaders(),
        body: Readable.toWeb(Readable.from([data])) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      expect(r.status).toBe(411);
      expect(((await r.json()) as { code: string }).code).toBe('HTTP_LENGTH_REQUIRED');
    });

    it('leaves nothing behind when the client closes mid-body', async () => {
      const data = randomBytes(512 * 1024);
      const target = sha(data);
      const { port } = new URL(cloud.httpUrl);
      const socket = net.connect(Number(port), '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(
        `PUT /v1/blobs/${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${data.length}\r\n\r\n`,
      );
      socket.write(data.subarray(0, 100 * 1024));
      // Only cut the connection once the server is really storing the upload.
      await until(async () => (await cloud.blobs.uploadsInFlight()).length > 0);
      socket.destroy();
      await until(async () => (await cloud.blobs.uploadsInFlight()).length === 0);
      expect(await cloud.blobs.stat(target)).toBeNull();
      expect(await blobFiles()).toEqual([SHA]);
      // The server is still healthy and accepts the same blob in full afterwards.
      expect(await client.putBlob(target, data.length, Readable.from([data]))).toEqual({
        sha256: target,
        size: data.length,
      });
      expect((await get({ range: 'bytes=0-0' })).status).toBe(206);
    });

    it('a client gone mid-download ends the answer quietly, not as a failed request', async () => {
      // Large enough that the socket buffers cannot take it all before the client goes.
      const data = randomBytes(16 * 1024 * 1024);
      const target = sha(data);
      await client.putBlob(target, data.length, Readable.from([data]));
      const before = failures.length;
      const { port } = new URL(cloud.httpUrl);
      const socket = net.connect(Number(port), '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(`GET /v1/blobs/${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
      await new Promise((r) => socket.once('data', r));
      socket.pause();
      socket.destroy();
      // The server logs every request when it ends (debug); wait for this GET's line (the upload
      // before it has the same path).
      await until(async () => requestsEnded.some((l) => l.method === 'GET' && l.path === `/v1/blobs/${target}`));
      expect(failures.slice(before)).toEqual([]);
      expect((await get({ range: 'bytes=0-0' })).status).toBe(206);
    });

    it('checks a re-upload of a stored blob the same way and keeps the good copy', async () => {
      const wrong = randomBytes(BLOB.length);
      await expect(client.putBlob(SHA, wrong.length, Readable.from([wrong]))).rejects.toSatisfy(
        (e: unknown) => e instanceof OutpostError && e.code === 'BLOB_HASH_MISMATCH',
      );
      expect((await get({})).body.equals(BLOB)).toBe(true);
      expect(await client.putBlob(SHA, BLOB.length, Readable.from([BLOB]))).toEqual({ sha256: SHA, size: BLOB.length });
    });
  });
});

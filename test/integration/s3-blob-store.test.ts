import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud } from '../../cloud-broker/cloud.js';
import { MIN_PART_SIZE, S3BlobStore, type S3BlobStoreOptions } from '../../cloud-broker/artifacts/s3-blob-store.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { closedPort } from '../helpers/daemon-process.js';
import { startS3rver, type S3Server } from '../helpers/engines/s3rver.js';
import { useTempDir } from '../helpers/temp-dir.js';

// The S3 blob store against a real S3-API server (s3rver on 127.0.0.1:0, SigV4 checked), plus
// a plain HTTP server that answers every request with S3's 503 for the "S3 is failing" case.
const tmp = useTempDir('outpost-s3-', 'all');
let s3: S3Server;
let failing: http.Server;
let failingUrl: string;
const stores: S3BlobStore[] = [];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const code = (c: string) => (e: unknown) => e instanceof OutpostError && e.code === c;

function store(o: Partial<S3BlobStoreOptions> = {}): S3BlobStore {
  const s = new S3BlobStore({
    bucket: s3.bucket,
    prefix: 'fleet/',
    endpoint: s3.url,
    forcePathStyle: true,
    credentials: s3.credentials,
    partSize: MIN_PART_SIZE,
    ...o,
  });
  stores.push(s);
  return s;
}

async function readAll(s: S3BlobStore, digest: string, start: number, end: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await s.read(digest, start, end)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A client body that sends `keep` bytes, then fails as a cut connection does. */
function cutAfter(data: Buffer, keep: number): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(data.subarray(0, keep));
        return;
      }
      setImmediate(() => this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    },
  });
}

const writes = (): string[] => s3.requests.filter((r) => r.startsWith('PUT ') || r.startsWith('POST '));

beforeAll(async () => {
  s3 = await startS3rver(tmp.dir);
  failing = http.createServer((req, res) => {
    req.resume();
    res.writeHead(503, { 'content-type': 'application/xml' });
    res.end(
      '<?xml version="1.0"?><Error><Code>ServiceUnavailable</Code><Message>Reduce your request rate.</Message></Error>',
    );
  });
  await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
  failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await s3?.stop();
  failing?.closeAllConnections();
  await new Promise((r) => failing?.close(r));
});

describe('S3 blob store on s3rver', () => {
  it('checks the bucket at init, stores a small blob, and serves it whole and by range', async () => {
    const s = store();
    await s.init();
    const data = randomBytes(300_000);
    const digest = sha(data);
    expect(await s.stat(digest)).toBeNull();
    expect(await s.put(digest, data.length, Readable.from([data.subarray(0, 1000), data.subarray(1000)]))).toEqual({
      sha256: digest,
      size: data.length,
      created: true,
    });
    expect(await s.stat(digest)).toEqual({ size: data.length });
    // A fresh store (another replica) sees it too, from the bucket.
    expect(await store().stat(digest)).toEqual({ size: data.length });
    expect((await readAll(s, digest, 0, data.length - 1)).equals(data)).toBe(true);
    expect((await readAll(s, digest, 1234, 99_999)).equals(data.subarray(1234, 100_000))).toBe(true);
    expect(await s.uploadsInFlight()).toEqual([]);
  });

  it('checks a re-upload of a stored blob without writing it again', async () => {
    const s = store();
    const data = randomBytes(10_000);
    const digest = sha(data);
    await s.put(digest, data.length, Readable.from([data]));
    const before = writes().length;
    expect((await s.put(digest, data.length, Readable.from([data]))).created).toBe(false);
    expect(writes().length).toBe(before);
    // Wrong bytes under a stored name are still refused, and the good copy stays.
    await expect(s.put(digest, data.length, Readable.from([randomBytes(data.length)]))).rejects.toSatisfy(
      code('BLOB_HASH_MISMATCH'),
    );
    expect((await readAll(s, digest, 0, data.length - 1)).equals(data)).toBe(true);
  });

  it('uploads a blob larger than a part in parts and commits it only after the hash matched', async () => {
    const s = store();
    const data = randomBytes(2 * MIN_PART_SIZE + 12_345);
    const digest = sha(data);
    const partsBefore = s3.requests.filter((r) => r.includes('partNumber=')).length;
    await s.put(digest, data.length, Readable.from([data]));
    expect(s3.requests.filter((r) => r.includes('partNumber=')).length - partsBefore).toBe(3);
    expect(await store().stat(digest)).toEqual({ size: data.length });
    // A range across the first part boundary.
    const a = MIN_PART_SIZE - 100;
    expect((await readAll(s, digest, a, a + 199)).equals(data.subarray(a, a + 200))).toBe(true);
    expect(await s.uploadsInFlight()).toEqual([]);
  });

  it('makes nothing visible for a wrong hash, a cut body or a body longer than declared', async () => {
    const s = store();
    const big = randomBytes(MIN_PART_SIZE + 4096);
    const other = sha(randomBytes(8));
    await expect(s.put(other, big.length, Readable.from([big]))).rejects.toSatisfy(code('BLOB_HASH_MISMATCH'));
    expect(await store().stat(other)).toBeNull();

    const cutTarget = sha(big);
    await expect(s.put(cutTarget, big.length, cutAfter(big, MIN_PART_SIZE + 10))).rejects.toSatisfy(
      code('BLOB_UPLOAD_INCOMPLETE'),
    );
    expect(await store().stat(cutTarget)).toBeNull();

    const small = randomBytes(1000);
    await expect(s.put(sha(small.subarray(0, 500)), 500, Readable.from([small]))).rejects.toSatisfy(
      code('BAD_REQUEST'),
    );
    expect(await store().stat(sha(small.subarray(0, 500)))).toBeNull();
    expect(await s.uploadsInFlight()).toEqual([]);
  });

  it('stores the empty blob, and answers a missing one with null and BLOB_NOT_FOUND', async () => {
    const s = store();
    const empty = sha(Buffer.alloc(0));
    expect((await s.put(empty, 0, Readable.from([]))).created).toBe(true);
    expect(await store().stat(empty)).toEqual({ size: 0 });
    const absent = 'e'.repeat(64);
    expect(await s.stat(absent)).toBeNull();
    await expect(s.read(absent, 0, 0)).rejects.toSatisfy(code('BLOB_NOT_FOUND'));
    await expect(s.stat('../../etc/passwd')).rejects.toSatisfy(code('BAD_REQUEST'));
  });
});

describe('S3 blob store failures', () => {
  it('an endpoint nobody listens on is BLOB_STORE_UNAVAILABLE, at init and per request', async () => {
    const s = store({ endpoint: `http://127.0.0.1:${await closedPort()}` });
    const err = await s.init().catch((e: unknown) => e);
    expect(err).toSatisfy(code('BLOB_STORE_UNAVAILABLE'));
    expect((err as OutpostError).message).toContain('--s3-endpoint');
    await expect(s.stat('a'.repeat(64))).rejects.toSatisfy(code('BLOB_STORE_UNAVAILABLE'));
    await expect(s.read('a'.repeat(64), 0, 9)).rejects.toSatisfy(code('BLOB_STORE_UNAVAILABLE'));
    const data = Buffer.from('x');
    await expect(s.put(sha(data), 1, Readable.from([data]))).rejects.toSatisfy(code('BLOB_STORE_UNAVAILABLE'));
  });

  it('a server answering 5xx is BLOB_STORE_UNAVAILABLE, with the S3 error named', async () => {
    const s = store({ endpoint: failingUrl });
    const err = await s.stat('b'.repeat(64)).catch((e: unknown) => e);
    expect(err).toSatisfy(code('BLOB_STORE_UNAVAILABLE'));
    expect((err as OutpostError).details).toMatchObject({ httpStatus: 503 });
    await expect(s.read('b'.repeat(64), 0, 0)).rejects.toSatisfy(code('BLOB_STORE_UNAVAILABLE'));
  });

  it('wrong credentials and a missing bucket are BLOB_STORE_REFUSED, saying what to fix', async () => {
    const wrong = store({ credentials: { accessKeyId: 'NOPE', secretAccessKey: 'NOPE' } });
    const err = await wrong.init().catch((e: unknown) => e);
    expect(err).toSatisfy(code('BLOB_STORE_REFUSED'));
    expect((err as OutpostError).message).toContain('AWS_ACCESS_KEY_ID');
    expect(JSON.stringify(err)).not.toContain('NOPE');
    const noBucket = store({ bucket: 'no-such-bucket' });
    const e2 = await noBucket.init().catch((e: unknown) => e);
    expect(e2).toSatisfy(code('BLOB_STORE_REFUSED'));
    expect((e2 as OutpostError).message).toContain('does not exist');
  });
});

describe('a body read through the store', () => {
  it('is a stream of exactly the asked bytes', async () => {
    const s = store();
    const data = Buffer.from('0123456789abcdef');
    await s.put(sha(data), data.length, Readable.from([data]));
    expect(await text(await s.read(sha(data), 3, 7))).toBe('34567');
  });
});

describe('a cloud whose S3 goes away', () => {
  it('answers downloads, checks and uploads with 503 BLOB_STORE_UNAVAILABLE, saying what to check', async () => {
    const own = await startS3rver(join(tmp.dir, 'own'));
    const cloud = await startCloud({
      dataDir: join(tmp.dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      blobStore: {
        kind: 's3',
        bucket: own.bucket,
        prefix: '',
        endpoint: own.url,
        forcePathStyle: true,
        credentials: own.credentials,
      },
    });
    try {
      const token = (await readFile(cloud.adminTokenFile, 'utf8')).trim();
      const auth = { authorization: `Bearer ${token}` };
      const data = randomBytes(4096);
      const url = `${cloud.httpUrl}/v1/blobs/${sha(data)}`;
      const put = await fetch(url, { method: 'PUT', headers: auth, body: data });
      expect(put.status).toBe(201);
      expect((await fetch(url, { headers: { ...auth, range: 'bytes=0-9' } })).status).toBe(206);

      await own.stop();
      const get = await fetch(url, { headers: { ...auth, range: 'bytes=10-' } });
      expect(get.status).toBe(503);
      const body = (await get.json()) as { code: string; message: string };
      expect(body.code).toBe('BLOB_STORE_UNAVAILABLE');
      expect(body.message).toContain('--s3-endpoint');
      const other = randomBytes(100);
      const head = await fetch(`${cloud.httpUrl}/v1/blobs/${sha(other)}`, { method: 'HEAD', headers: auth });
      expect(head.status).toBe(503);
      const again = await fetch(`${cloud.httpUrl}/v1/blobs/${sha(other)}`, {
        method: 'PUT',
        headers: auth,
        body: other,
      });
      expect(again.status).toBe(503);
      expect(((await again.json()) as { code: string }).code).toBe('BLOB_STORE_UNAVAILABLE');
    } finally {
      await cloud.close();
      await own.stop();
    }
  });
});

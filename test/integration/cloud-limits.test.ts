import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { createLogger } from '../../protocol/log.js';
import { rawConnect } from '../helpers/raw-http.js';
import { blobDir } from '../helpers/blob-dir.js';

/**
 * Issue 11 D3, D4 and the upload quotas against a real cloud on port 0: each limit is set low
 * and then exceeded over real sockets. Every test here failed before its fix (D3: the drip was
 * never cut; D4: every wrong token got its 401, no 429, no log line; quotas: unlimited).
 */
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let cloud: Cloud;
let adminToken: string;
let port: number;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-limits-'));
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => {
    for (const line of c.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
  });
  cloud = await startCloud({
    dataDir: dir,
    httpPort: 0,
    mqttPort: 0,
    log: createLogger({ level: 'warn', destination: sink }),
    limits: {
      http: { headersTimeoutMs: 1_000, bodyMinBytes: 1_024, bodyWindowMs: 700, maxConnections: 40 },
      auth: { perSource: 6, perCredential: 3, windowMs: 60_000 },
      uploads: { maxUnreferencedCount: 3, maxUnreferencedBytes: 1024 * 1024 },
    },
  });
  adminToken = (await fs.readFile(cloud.adminTokenFile, 'utf8')).trim();
  port = Number(new URL(cloud.httpUrl).port);
});
afterAll(async () => {
  await cloud?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** One GET from a chosen loopback source address (Linux routes all of 127/8 to lo). */
function getFrom(localAddress: string, token: string): Promise<{ status: number; retryAfter?: string; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/v1/whoami', localAddress, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] as string | undefined,
            code: (JSON.parse(text) as { code?: string }).code,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const put = (token: string, sha256: string, length: number) =>
  `PUT /v1/blobs/${sha256} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${length}\r\n\r\n`;

describe('D3: slow clients', () => {
  it('cuts a body dripped at 1 byte per 100 ms with 408 HTTP_BODY_TOO_SLOW', async () => {
    const c = await rawConnect({ port });
    const data = randomBytes(50_000);
    c.write(put(adminToken, sha(data), data.length));
    const drip = setInterval(() => c.write(Buffer.from([1])), 100);
    const a = await c.answer(10_000);
    clearInterval(drip);
    expect(a.status).toBe(408);
    expect(a.code).toBe('HTTP_BODY_TOO_SLOW');
    expect(a.headers.connection).toBe('close');
    // ...and the server closes the connection (the test's timeout is the bound).
    if (!c.socket.destroyed) await new Promise((r) => c.socket.once('close', r));
    expect(await cloud.blobs.stat(sha(data))).toBeNull();
  });

  it('does not cut an upload that is long but keeps above the rate floor, nor a fast large one', async () => {
    // 4 KiB every 150 ms for ~3 s: far longer than one window, far above 1 KiB per window.
    const slowish = randomBytes(80 * 1024);
    const c = await rawConnect({ port });
    c.write(put(adminToken, sha(slowish), slowish.length));
    for (let off = 0; off < slowish.length; off += 4096) {
      c.write(slowish.subarray(off, off + 4096));
      await new Promise((r) => setTimeout(r, 150));
    }
    const a = await c.answer(10_000);
    expect(a.status).toBe(201);
    c.close();
    const big = randomBytes(16 * 1024 * 1024);
    const client = new CloudClient({ url: cloud.httpUrl, token: adminToken });
    expect(await client.putBlob(sha(big), big.length, Readable.from([big]))).toMatchObject({ size: big.length });
  });

  it('answers headers that never finish with 408 HTTP_REQUEST_TIMEOUT', async () => {
    const c = await rawConnect({ port });
    c.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n');
    const a = await c.answer(10_000);
    expect(a.status).toBe(408);
    expect(a.code).toBe('HTTP_REQUEST_TIMEOUT');
  });

  it('refuses the connection over http.maxConnections with 503 and a code, and recovers', async () => {
    const held = await Promise.all(Array.from({ length: 40 }, () => rawConnect({ port })));
    // Connections are counted as the server accepts them: wait until all 40 are in.
    await new Promise((r) => setTimeout(r, 200));
    const extra = await rawConnect({ port });
    const a = await extra.answer(5_000);
    expect(a.status).toBe(503);
    expect(a.code).toBe('HTTP_TOO_MANY_CONNECTIONS');
    expect(a.headers['retry-after']).toBe('1');
    for (const h of held) h.close();
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`${cloud.httpUrl}/v1/health`)).status).toBe(200);
  });
});

describe('D4: failed authentication is rate limited per source and per credential', () => {
  it('answers 429 with Retry-After after perSource failures, even for a valid token, only for that source', async () => {
    const before = logLines.length;
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await getFrom('127.0.0.2', `op_wrong-${i}`));
    expect(answers.slice(0, 6).map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 401]);
    expect(answers.slice(6).map((a) => a.code)).toEqual(['AUTH_RATE_LIMITED', 'AUTH_RATE_LIMITED']);
    expect(Number(answers[7].retryAfter)).toBeGreaterThan(0);
    // A blocked source learns nothing, not even that a token is right.
    expect((await getFrom('127.0.0.2', adminToken)).status).toBe(429);
    // Another source is not affected.
    expect((await getFrom('127.0.0.3', adminToken)).status).toBe(200);
    const warns = logLines.slice(before).filter((l) => String(l.msg).includes('over the limit'));
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 40, source: '127.0.0.2', by: 'source' });
    expect(JSON.stringify(warns)).not.toContain('op_wrong');
  });

  it('blocks one credential after perCredential failures while other tokens from the same place still get 401', async () => {
    const same = 'op_stolen-and-revoked';
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await getFrom('127.0.0.4', same)).code);
    expect(codes).toEqual(['AUTH_TOKEN_INVALID', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_INVALID', 'AUTH_RATE_LIMITED']);
    expect((await getFrom('127.0.0.5', same)).code).toBe('AUTH_RATE_LIMITED');
    expect((await getFrom('127.0.0.4', 'op_another')).code).toBe('AUTH_TOKEN_INVALID');
    const warn = logLines.find((l) => l.by === 'credential');
    expect(warn?.tokenFingerprint).toMatch(/^[0-9a-f]{12}$/);
    expect(JSON.stringify(warn)).not.toContain(same);
  });

  it('refuses MQTT logins with CONNACK 3 after perCredential wrong passwords for one username', async () => {
    await cloud.fleet.fleet.provision('lim-dev', []);
    const connack = (password: string): Promise<number> =>
      new Promise((resolve) => {
        const c = mqtt.connect(cloud.mqttUrl!, {
          username: 'lim-dev',
          password,
          clientId: 'lim-dev',
          reconnectPeriod: 0,
          connectTimeout: 5_000,
        });
        c.once('connect', () => {
          c.end(true);
          resolve(0);
        });
        c.once('error', (err) => {
          c.end(true);
          resolve((err as { code?: number }).code ?? -1);
        });
      });
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push(await connack(`wrong-password-${i}`));
    expect(codes).toEqual([4, 4, 4, 3]);
    const warn = logLines.find((l) => String(l.msg).includes('MQTT logins over the limit'));
    expect(warn).toMatchObject({ username: 'lim-dev', by: 'credential' });
    expect(JSON.stringify(warn)).not.toContain('wrong-password');
  });
});

describe('Minor: upload quotas and free space', () => {
  it('refuses a user more than maxUnreferencedCount unreferenced blobs; publishing frees the quota', async () => {
    const admin = new CloudClient({ url: cloud.httpUrl, token: adminToken });
    const { token } = await admin.createUser('quota');
    const u = new CloudClient({ url: cloud.httpUrl, token });
    const blobs = Array.from({ length: 4 }, (_, i) => Buffer.from(`quota blob ${i}`));
    for (const b of blobs.slice(0, 3)) await u.putBlob(sha(b), b.length, Readable.from([b]));
    await expect(u.putBlob(sha(blobs[3]), blobs[3].length, Readable.from([blobs[3]]))).rejects.toSatisfy(
      (e: unknown) => e instanceof OutpostError && e.code === 'BLOB_QUOTA_EXCEEDED',
    );
    await u.createVersion('quota', 'm', {
      manifest: { id: 'quota/m', model_parameters: { framework_type: 'onnx', model_file: 'a' } },
      files: [{ path: 'a', sha256: sha(blobs[0]), size: blobs[0].length }],
    });
    await u.putBlob(sha(blobs[3]), blobs[3].length, Readable.from([blobs[3]]));
    // Bytes: one declared blob over maxUnreferencedBytes is refused before a byte is sent.
    const c = await rawConnect({ port });
    c.write(put(token, sha(Buffer.from('big')), 2 * 1024 * 1024));
    const a = await c.answer(5_000);
    expect(a.code).toBe('BLOB_QUOTA_EXCEEDED');
  });

  it('refuses a declared 64 GiB upload that would eat the free-space reserve, with 507 before any byte', async () => {
    const st = await fs.statfs(blobDir(cloud).root);
    const free = Number(st.bavail) * Number(st.bsize);
    const declared = 64 * 1024 ** 3;
    // A cloud whose reserve makes 64 GiB one byte too many on this disk, whatever its size.
    const small = await startCloud({
      dataDir: path.join(dir, 'small'),
      httpPort: 0,
      mqttPort: 0,
      limits: { uploads: { minFreeBytes: Math.max(0, free - declared + 1) } },
    });
    try {
      const token = (await fs.readFile(small.adminTokenFile, 'utf8')).trim();
      const c = await rawConnect({ port: Number(new URL(small.httpUrl).port) });
      c.write(put(token, sha(Buffer.from('x')), declared));
      const a = await c.answer(5_000);
      expect(a.status).toBe(507);
      expect(a.code).toBe('BLOB_NO_SPACE');
      expect(await small.blobs.uploadsInFlight()).toEqual([]);
    } finally {
      await small.close();
    }
  });
});

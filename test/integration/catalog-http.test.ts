import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../cloud-broker/auth/index.js';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { testDatabase, testEngine } from '../helpers/test-db.js';

// A real cloud on port 0 in a temp data dir; requests go over real HTTP (fetch and CloudClient).
let dir: string;
let cloud: Cloud;
let adminToken: string;
let alice: CloudClient;
let aliceToken: string;
let bobToken: string;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const MODEL = Buffer.from('pretend onnx bytes');
const LABELS = Buffer.from('cat\ndog\n');

async function call(
  method: string,
  p: string,
  opts: { token?: string; body?: unknown; raw?: string | Buffer } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const body = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const r = await fetch(cloud.httpUrl + p, { method, headers, body });
  const text = await r.text();
  return { status: r.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toSatisfy((e: unknown) => e instanceof OutpostError && e.code === code);
}

function manifest(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    public: false,
    model_parameters: {
      framework_type: 'onnx',
      model_file: 'model.onnx',
      label_file: 'labels.txt',
      purpose: 'Classification',
    },
    ...extra,
  };
}
const files = () => [
  { path: 'model.onnx', sha256: sha(MODEL), size: MODEL.length },
  { path: 'labels.txt', sha256: sha(LABELS), size: LABELS.length },
];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-catalog-'));
  cloud = await startCloud({ dataDir: dir, httpPort: 0, database: await testDatabase() });
  adminToken = (await fs.readFile(cloud.adminTokenFile, 'utf8')).trim();
  const admin = new CloudClient({ url: cloud.httpUrl, token: adminToken });
  aliceToken = (await admin.createUser('alice')).token;
  bobToken = (await admin.createUser('bob')).token;
  alice = new CloudClient({ url: cloud.httpUrl, token: aliceToken });
  for (const b of [MODEL, LABELS]) await alice.putBlob(sha(b), b.length, Readable.from([b]));
});

afterAll(async () => {
  await cloud?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('catalog HTTP API: auth', () => {
  it('answers health without a token and writes a 0600 admin token file and cloud.json', async () => {
    // A lone cloud is its own fleet leader (docs/scale.md, "Run-once work").
    const replica = cloud.fleet.leadership.replica;
    expect(await call('GET', '/v1/health')).toEqual({
      status: 200,
      json: {
        ok: true,
        version: expect.any(String),
        replica,
        leader: { replica, epoch: expect.any(Number), expiresAt: expect.any(String) },
        isLeader: true,
      },
    });
    expect((await fs.stat(cloud.adminTokenFile)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await fs.readFile(path.join(dir, 'cloud.json'), 'utf8'))).toEqual({
      http: cloud.httpUrl,
      mqtt: cloud.mqttUrl,
      pid: process.pid,
    });
  });

  it('tells a missing token from a wrong one (401) and a forbidden kind (403)', async () => {
    expect(await call('GET', '/v1/whoami')).toMatchObject({ status: 401, json: { code: 'AUTH_TOKEN_MISSING' } });
    expect(await call('GET', '/v1/whoami', { token: 'op_nope' })).toMatchObject({
      status: 401,
      json: { code: 'AUTH_TOKEN_INVALID' },
    });
    expect(await call('GET', '/v1/whoami', { token: aliceToken })).toEqual({
      status: 200,
      json: { user: 'alice', kind: 'user' },
    });
    expect(await call('GET', '/v1/stats', { token: aliceToken })).toMatchObject({ status: 403 });
    const before = (await call('GET', '/v1/stats', { token: adminToken })).json as {
      database: { engine: string; queries: number };
    };
    expect(before.database.engine).toBe(testEngine());
    await call('GET', '/v1/whoami', { token: aliceToken });
    const after = (await call('GET', '/v1/stats', { token: adminToken })).json as typeof before;
    // Checking a token reads the database: the counter moves.
    expect(after.database.queries).toBeGreaterThan(before.database.queries);
    expect(await call('POST', '/v1/users', { token: aliceToken, body: { name: 'mallory' } })).toMatchObject({
      status: 403,
      json: { code: 'AUTH_FORBIDDEN' },
    });
    expect(await call('POST', '/v1/users', { token: adminToken, body: { name: 'alice' } })).toMatchObject({
      status: 409,
      json: { code: 'CATALOG_USER_EXISTS' },
    });
    expect(await call('POST', '/v1/users', { token: adminToken, body: { name: '../x' } })).toMatchObject({
      status: 400,
      json: { code: 'BAD_REQUEST' },
    });
  });

  it('lets a device token never write, and read nothing that is not deployed to it', async () => {
    await alice.createVersion('alice', 'devread', { manifest: manifest('alice/devread'), files: files() });
    const device = new CloudClient({ url: cloud.httpUrl, token: createToken(cloud.db, 'device', 'dev-1') });
    expect(await device.whoami()).toEqual({ user: 'dev-1', kind: 'device' });
    // Reads through deployments: test/integration/least-privilege.test.ts.
    await expectCode(device.getVersion('alice/devread', 'latest'), 'CATALOG_MODEL_NOT_FOUND');
    expect(await device.hasBlob(sha(MODEL))).toBe(false);
    const other = Buffer.from('device upload');
    await expectCode(device.putBlob(sha(other), other.length, Readable.from([other])), 'AUTH_FORBIDDEN');
    await expectCode(
      device.createVersion('alice', 'devread', { manifest: manifest('alice/devread'), files: files(), force: true }),
      'AUTH_FORBIDDEN',
    );
    expect(await cloud.blobs.stat(sha(other))).toBeNull();
  });
});

describe('catalog HTTP API: publishing', () => {
  it('numbers versions, answers unchanged content without a new version, and force makes one', async () => {
    const first = await alice.createVersion('alice', 'mobilenet', {
      manifest: manifest('alice/mobilenet'),
      files: files(),
    });
    expect(first).toEqual({ id: 'alice/mobilenet', version: 1 });
    const again = await call('POST', '/v1/models/alice/mobilenet/versions', {
      token: aliceToken,
      body: { manifest: manifest('alice/mobilenet'), files: files().reverse() },
    });
    expect(again).toEqual({ status: 200, json: { id: 'alice/mobilenet', version: 1, unchanged: true } });
    const forced = await alice.createVersion('alice', 'mobilenet', {
      manifest: manifest('alice/mobilenet'),
      files: files(),
      force: true,
    });
    expect(forced).toEqual({ id: 'alice/mobilenet', version: 2 });
    const changed = await alice.createVersion('alice', 'mobilenet', {
      manifest: manifest('alice/mobilenet', { accuracy: '70%' }),
      files: files(),
    });
    expect(changed.version).toBe(3);
    const detail = await alice.getModel('alice/mobilenet');
    expect(detail.versions.map((v) => v.version)).toEqual([1, 2, 3]);
    expect(detail.latest).toBe(3);
    expect(detail.manifest.accuracy).toBe('70%');
    // Version 1 is unchanged by everything published after it.
    const v1 = await alice.getVersion('alice/mobilenet', 1);
    expect(v1.manifest.accuracy).toBeUndefined();
    expect(v1.files).toEqual(files().sort((a, b) => a.path.localeCompare(b.path)));
    await expectCode(alice.getVersion('alice/mobilenet', 9), 'CATALOG_VERSION_NOT_FOUND');
    expect(await call('GET', '/v1/models/alice/mobilenet/versions/zero', { token: aliceToken })).toMatchObject({
      status: 400,
      json: { code: 'BAD_REQUEST' },
    });
  });

  it('gives concurrent publishes distinct consecutive versions', async () => {
    const body = { manifest: manifest('alice/race'), files: files(), force: true };
    const got = await Promise.all(Array.from({ length: 5 }, () => alice.createVersion('alice', 'race', body)));
    expect(got.map((g) => g.version).sort()).toEqual([1, 2, 3, 4, 5]);
    expect((await alice.getModel('alice/race')).versions.map((v) => v.version)).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps users to their own owner; the admin may publish anywhere', async () => {
    const bob = new CloudClient({ url: cloud.httpUrl, token: bobToken });
    await expectCode(
      bob.createVersion('alice', 'mobilenet', { manifest: manifest('alice/mobilenet'), files: files(), force: true }),
      'AUTH_OWNER_FORBIDDEN',
    );
    expect((await alice.getModel('alice/mobilenet')).latest).toBe(3);
    const admin = new CloudClient({ url: cloud.httpUrl, token: adminToken });
    expect(
      await admin.createVersion('alwaysai', 'mobilenet_ssd', {
        manifest: manifest('alwaysai/mobilenet_ssd', { public: true }),
        files: files(),
      }),
    ).toEqual({ id: 'alwaysai/mobilenet_ssd', version: 1 });
  });

  it('hides private models of other owners and shows public ones', async () => {
    const bob = new CloudClient({ url: cloud.httpUrl, token: bobToken });
    const ids = (await bob.listModels()).map((m) => m.id);
    expect(ids).toContain('alwaysai/mobilenet_ssd');
    expect(ids).not.toContain('alice/mobilenet');
    await expectCode(bob.getModel('alice/mobilenet'), 'CATALOG_MODEL_NOT_FOUND');
    const adminIds = (await new CloudClient({ url: cloud.httpUrl, token: adminToken }).listModels()).map((m) => m.id);
    expect(adminIds).toContain('alice/mobilenet');
  });

  it.each([
    [
      'an id that differs from the URL',
      { manifest: manifest('alice/other'), files: files() },
      400,
      'CATALOG_ID_MISMATCH',
    ],
    [
      'a path with ..',
      {
        manifest: manifest('alice/bad'),
        files: [...files(), { path: '../../etc/passwd', sha256: sha(MODEL), size: MODEL.length }],
      },
      400,
      'CATALOG_FILE_PATH_INVALID',
    ],
    [
      'an absolute path',
      {
        manifest: manifest('alice/bad'),
        files: [...files(), { path: '/etc/passwd', sha256: sha(MODEL), size: MODEL.length }],
      },
      400,
      'CATALOG_FILE_PATH_INVALID',
    ],
    [
      'a blob never uploaded',
      { manifest: manifest('alice/bad'), files: [...files(), { path: 'x.bin', sha256: 'e'.repeat(64), size: 1 }] },
      422,
      'CATALOG_FILE_MISSING',
    ],
    [
      'a wrong size',
      { manifest: manifest('alice/bad'), files: [{ ...files()[0], size: 5 }, files()[1]] },
      422,
      'CATALOG_FILE_SIZE_MISMATCH',
    ],
    [
      'a manifest naming a file not sent',
      { manifest: manifest('alice/bad'), files: [files()[0]] },
      400,
      'CATALOG_MANIFEST_INVALID',
    ],
  ])('refuses %s and creates nothing', async (_what, body, status, code) => {
    const r = await call('POST', '/v1/models/alice/bad/versions', { token: aliceToken, body });
    expect(r).toMatchObject({ status, json: { code } });
    await expectCode(alice.getModel('alice/bad'), 'CATALOG_MODEL_NOT_FOUND');
  });

  it('refuses bad JSON, non-objects and bodies over the limit with their own codes', async () => {
    const p = '/v1/models/alice/bad/versions';
    expect(await call('POST', p, { token: aliceToken, raw: '{"manifest": ' })).toMatchObject({
      status: 400,
      json: { code: 'HTTP_BODY_INVALID_JSON' },
    });
    expect(await call('POST', p, { token: aliceToken, raw: '[1,2]' })).toMatchObject({
      status: 400,
      json: { code: 'HTTP_BODY_INVALID_JSON' },
    });
    const big = JSON.stringify({
      manifest: manifest('alice/bad', { pad: 'x'.repeat(2 * 1024 * 1024) }),
      files: files(),
    });
    expect(await call('POST', p, { token: aliceToken, raw: big })).toMatchObject({
      status: 413,
      json: { code: 'HTTP_BODY_TOO_LARGE' },
    });
    // The server keeps serving after all of them.
    expect((await call('GET', '/v1/health')).status).toBe(200);
  });

  it('answers unknown routes 404 and wrong methods 405, always as error bodies', async () => {
    expect(await call('GET', '/v1/nope', { token: aliceToken })).toMatchObject({
      status: 404,
      json: { code: 'NOT_FOUND' },
    });
    expect(await call('DELETE', '/v1/models', { token: aliceToken })).toMatchObject({
      status: 405,
      json: { code: 'HTTP_METHOD_NOT_ALLOWED' },
    });
  });
});

describe('catalog HTTP API: apps', () => {
  it('stores an app model list that only existing, visible versions may enter', async () => {
    await expectCode(alice.getApp('alice/my-app'), 'CATALOG_APP_NOT_FOUND');
    expect((await alice.putApp('alice/my-app', { 'alice/mobilenet': 2, 'alwaysai/mobilenet_ssd': 1 })).models).toEqual({
      'alice/mobilenet': 2,
      'alwaysai/mobilenet_ssd': 1,
    });
    expect((await alice.getApp('alice/my-app')).models).toEqual({ 'alice/mobilenet': 2, 'alwaysai/mobilenet_ssd': 1 });
    await expectCode(alice.putApp('alice/my-app', { 'alice/mobilenet': 99 }), 'CATALOG_VERSION_NOT_FOUND');
    const bob = new CloudClient({ url: cloud.httpUrl, token: bobToken });
    await expectCode(bob.putApp('alice/my-app', {}), 'AUTH_OWNER_FORBIDDEN');
    await expectCode(bob.putApp('bob/app', { 'alice/mobilenet': 1 }), 'CATALOG_MODEL_NOT_FOUND');
    await expectCode(bob.getApp('alice/my-app'), 'CATALOG_APP_NOT_FOUND');
    expect(
      await call('PUT', '/v1/apps/alice/my-app', { token: aliceToken, body: { models: { 'not an id': 1 } } }),
    ).toMatchObject({ status: 400, json: { code: 'BAD_REQUEST' } });
    expect((await alice.getApp('alice/my-app')).models).toEqual({ 'alice/mobilenet': 2, 'alwaysai/mobilenet_ssd': 1 });
  });
});

describe('catalog client', () => {
  it('turns a refused connection into CLOUD_UNREACHABLE', async () => {
    const dead = await startCloud({ dataDir: path.join(dir, 'dead'), httpPort: 0, database: await testDatabase() });
    const url = dead.httpUrl;
    await dead.close();
    await expectCode(new CloudClient({ url, token: 'x' }).health(), 'CLOUD_UNREACHABLE');
  });
});

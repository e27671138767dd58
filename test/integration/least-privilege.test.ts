import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { startBlobServer, type BlobServer } from '../helpers/blob-server.js';
import { activeAt, startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';
import { blobDir } from '../helpers/blob-dir.js';

/**
 * Issue 11, D1/D2/D8 against the real cloud (HTTP, SQLite, aedes, fleet) and a real agent: a blob
 * is readable only through a model version its reader may see, publishing may reference only
 * blobs the publisher may read, a mirror never sees the device's token, and installed models are
 * not world-readable. Each `it` failed before its fix (noted per test).
 */
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let f: TestFleet;
let admin: CloudClient;

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toSatisfy((e: unknown) => e instanceof OutpostError && e.code === code);
}

async function raw(method: string, path: string, token: string, headers: Record<string, string> = {}) {
  const r = await fetch(f.cloud.httpUrl + path, { method, headers: { authorization: `Bearer ${token}`, ...headers } });
  const text = await r.text();
  return { status: r.status, text };
}

async function user(name: string): Promise<{ client: CloudClient; token: string }> {
  const { token } = await admin.createUser(name);
  return { client: new CloudClient({ url: f.cloud.httpUrl, token }), token };
}

/** Uploads `files` as `owner/name` with `client` and publishes a version; returns the shas. */
async function publishRaw(client: CloudClient, id: string, data: Buffer, isPublic = false): Promise<string> {
  const [owner, name] = id.split('/');
  await client.putBlob(sha(data), data.length, Readable.from([data]));
  await client.createVersion(owner, name, {
    manifest: { id, public: isPublic, model_parameters: { framework_type: 'onnx', model_file: 'model.onnx' } },
    files: [{ path: 'model.onnx', sha256: sha(data), size: data.length }],
    force: true,
  });
  return sha(data);
}

beforeAll(async () => {
  f = await startTestFleet();
  admin = new CloudClient({ url: f.cloud.httpUrl, token: f.adminToken });
});
afterAll(async () => {
  await f?.close();
});

describe('D1: user tokens read only blobs of models they may see', () => {
  it("refuses another owner's private blob on GET, HEAD and Range, as if it were absent", async () => {
    // Before the fix: 200 for all three.
    const alice = await user('alice');
    const bob = await user('bob');
    const secret = await publishRaw(alice.client, 'alice/private', Buffer.from('alice private weights'));
    expect((await raw('GET', `/v1/blobs/${secret}`, alice.token)).status).toBe(200);
    for (const [method, headers] of [
      ['GET', {}],
      ['HEAD', {}],
      ['GET', { range: 'bytes=0-3' }],
    ] as const) {
      const r = await raw(method, `/v1/blobs/${secret}`, bob.token, headers);
      expect(r.status).toBe(404);
      if (method === 'GET') expect(JSON.parse(r.text).code).toBe('BLOB_NOT_FOUND');
    }
    // The same answer as a blob that does not exist at all.
    const absent = await raw('GET', `/v1/blobs/${sha(Buffer.from('never uploaded'))}`, bob.token);
    expect(JSON.parse(absent.text).code).toBe('BLOB_NOT_FOUND');
  });

  it("refuses to publish a version that names another owner's private blob", async () => {
    // Before the fix: 201, and bob's public model then served alice's bytes to everyone.
    const alice = await user('alice2');
    const bob = await user('bob2');
    const data = Buffer.from('alice2 private weights');
    const secret = await publishRaw(alice.client, 'alice2/private', data);
    await expectCode(
      bob.client.createVersion('bob2', 'stolen', {
        manifest: { id: 'bob2/stolen', public: true, model_parameters: { framework_type: 'onnx', model_file: 'm' } },
        files: [{ path: 'm', sha256: secret, size: data.length }],
      }),
      'CATALOG_FILE_MISSING',
    );
    // Holding the bytes is proof enough: bob uploads them himself and may then use them.
    await bob.client.putBlob(secret, data.length, Readable.from([data]));
    expect(await bob.client.hasBlob(secret)).toBe(true);
  });

  it('lets every user read blobs of a public model, and the admin everything', async () => {
    const carol = await user('carol');
    const dave = await user('dave');
    const open = await publishRaw(carol.client, 'carol/open', Buffer.from('carol public weights'), true);
    expect((await raw('GET', `/v1/blobs/${open}`, dave.token)).status).toBe(200);
    const hidden = await publishRaw(carol.client, 'carol/hidden', Buffer.from('carol hidden weights'));
    expect((await raw('GET', `/v1/blobs/${hidden}`, f.adminToken)).status).toBe(200);
    expect((await dave.client.listModels()).map((m) => m.id)).toContain('carol/open');
    expect((await dave.client.listModels()).map((m) => m.id)).not.toContain('carol/hidden');
  });
});

describe('D2: device tokens read only what their current or previous desired state names', () => {
  it('sees a deployed version and its blobs, the previous one after an update, and nothing else', async () => {
    // Before the fix: a device token read every model and every blob of every owner.
    const owner = await user('erin');
    const a1 = await publishRaw(owner.client, 'erin/det', Buffer.from('det v1'));
    const other = await publishRaw(owner.client, 'erin/other', Buffer.from('other v1'));
    const { agentConfig } = await f.fleet.provision('lp-dev-a', []);
    const { agentConfig: configB } = await f.fleet.provision('lp-dev-b', []);
    const devA = new CloudClient({ url: f.cloud.httpUrl, token: agentConfig.credentials.token });
    const devB = new CloudClient({ url: f.cloud.httpUrl, token: configB.credentials.token });
    expect(await devA.hasBlob(a1)).toBe(false);

    await f.fleet.deploy({ model: 'erin/det@1' }, { kind: 'device', value: 'lp-dev-a' });
    expect(await devA.hasBlob(a1)).toBe(true);
    expect((await devA.getVersion('erin/det', 1)).files[0].sha256).toBe(a1);
    expect((await devA.listModels()).map((m) => m.id)).toEqual(['erin/det']);
    expect(await devA.hasBlob(other)).toBe(false);
    await expectCode(devA.getModel('erin/other'), 'CATALOG_MODEL_NOT_FOUND');
    // Another device sees none of it.
    expect(await devB.hasBlob(a1)).toBe(false);
    await expectCode(devB.getVersion('erin/det', 1), 'CATALOG_MODEL_NOT_FOUND');
    expect(await devB.listModels()).toEqual([]);

    // v2 deployed: v1 stays readable (the device may still be on it), v3 drops v1.
    const a2 = await publishRaw(owner.client, 'erin/det', Buffer.from('det v2'));
    await f.fleet.deploy({ model: 'erin/det@2' }, { kind: 'device', value: 'lp-dev-a' });
    expect(await devA.hasBlob(a1)).toBe(true);
    expect(await devA.hasBlob(a2)).toBe(true);
    const a3 = await publishRaw(owner.client, 'erin/det', Buffer.from('det v3'));
    await f.fleet.deploy({ model: 'erin/det@3' }, { kind: 'device', value: 'lp-dev-a' });
    expect(await devA.hasBlob(a3)).toBe(true);
    expect(await devA.hasBlob(a2)).toBe(true);
    expect(await devA.hasBlob(a1)).toBe(false);
    await expectCode(devA.getVersion('erin/det', 1), 'CATALOG_VERSION_NOT_FOUND');
    // Apps are no device's business.
    await admin.putApp('erin/app', { 'erin/det': 3 });
    await expectCode(devA.getApp('erin/app'), 'CATALOG_APP_NOT_FOUND');
  });
});

describe('D2: a blob mirror gets no device credentials; D8: installed models are not world-readable', () => {
  let mirror: BlobServer;
  beforeAll(async () => {
    mirror = await startBlobServer();
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('downloads from a mirror on another host without Authorization and installs 0750/0440', async () => {
    // Before the fix: the mirror saw "Authorization: Bearer <device token>" on every request,
    // and the installed folders were 0755 with 0444 files.
    const v = await f.publish('acme/mirrored');
    const detail = await admin.getVersion('acme/mirrored', v);
    for (const file of detail.files) mirror.add(await readFile(blobDir(f.cloud).pathOf(file.sha256)));
    // 127.0.0.1 vs localhost: another origin, as a CDN would be.
    f.cloud.fleet.fleet.useBlobMirror(`${mirror.url.replace('127.0.0.1', 'localhost')}/v1/blobs/`);
    try {
      await f.provision('lp-mirror');
      const agent = await f.startAgent('lp-mirror');
      await f.fleet.deploy({ model: `acme/mirrored@${v}` }, { kind: 'device', value: 'lp-mirror' });
      await waitFor('installed from the mirror', () => activeAt(agent, 'acme/mirrored', v));
      expect(mirror.requests.length).toBeGreaterThanOrEqual(detail.files.length);
      expect(mirror.requests.map((r) => r.authorization)).toEqual(mirror.requests.map(() => undefined));

      const modes: string[] = [];
      const walk = async (dir: string, models: boolean): Promise<void> => {
        for (const e of await readdir(dir, { withFileTypes: true })) {
          const p = join(dir, e.name);
          if (e.isSymbolicLink()) continue;
          const m = (await stat(p)).mode & 0o777;
          if (m & 0o007) modes.push(`${p}: ${m.toString(8)}`);
          if (e.isDirectory()) await walk(p, models);
          else if (models) expect(m).toBe(0o440);
        }
      };
      // The model files themselves are exactly 0440; nothing anywhere (the agent's own state in
      // .outpost included) is open to others.
      await walk(join(agent.modelsDir, 'acme'), true);
      await walk(agent.modelsDir, false);
      expect(modes).toEqual([]);
    } finally {
      f.cloud.fleet.fleet.useBlobMirror(`${f.cloud.httpUrl}/v1/blobs/`);
    }
  });
});

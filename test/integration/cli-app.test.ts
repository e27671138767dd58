import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { EXIT } from '../../protocol/errors/index.js';
import { cleanEnv, runInProcess, snapshotDir, spawnCli, startProxy, tempDir } from '../helpers/cli.js';
import { testDatabase } from '../helpers/test-db.js';

// `outpost app models add|remove|show|sync` and `outpost app install` against a real cloud.
let cloud: Cloud;
let root: string;
let cleanup: () => Promise<void>;
let aliceToken: string;
let alice: CloudClient;
const env = () => cleanEnv({ OUTPOST_CLOUD_URL: cloud.httpUrl, OUTPOST_TOKEN: aliceToken, HOME: root });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Publishes `id` with a model file of `bytes` through the CLI; returns the version. */
async function publish(id: string, bytes: Buffer): Promise<number> {
  const dir = join(root, 'src', id.replace('/', '_'));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'm.onnx'), bytes);
  await writeFile(join(dir, 'labels.txt'), 'a\nb\n');
  const conf = await runInProcess(
    [
      'model',
      'configure',
      '--framework',
      'onnx',
      '--purpose',
      'ObjectDetection',
      '--model_file',
      'm.onnx',
      '--label_file',
      'labels.txt',
      '--size',
      '64x64',
    ],
    { cwd: dir, env: env() },
  );
  expect(conf.code, conf.stderr).toBe(0);
  const p = join(dir, 'alwaysai.model.json');
  await writeFile(p, JSON.stringify({ ...JSON.parse(await readFile(p, 'utf8')), id }));
  const run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: env() });
  expect(run.code, run.stdout).toBe(0);
  return run.json().version;
}

let apps = 0;
async function appFolder(content: unknown = { scripts: { start: 'python3 app.py' }, models: {} }): Promise<string> {
  const dir = join(root, `app${++apps}`);
  await mkdir(dir, { recursive: true });
  if (content !== null) await writeFile(join(dir, 'alwaysai.app.json'), JSON.stringify(content, null, 2));
  return dir;
}

const det1 = randomBytes(100_000);
const det2 = randomBytes(120_000);

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir('app'));
  cloud = await startCloud({
    dataDir: join(root, 'cloud'),
    host: '127.0.0.1',
    httpPort: 0,
    mqttPort: 0,
    database: await testDatabase(),
  });
  const admin = new CloudClient({ url: cloud.httpUrl, token: (await readFile(cloud.adminTokenFile, 'utf8')).trim() });
  aliceToken = (await admin.createUser('alice')).token;
  await admin.createUser('bob');
  alice = new CloudClient({ url: cloud.httpUrl, token: aliceToken });
  expect(await publish('alice/det', det1)).toBe(1);
  expect(await publish('alice/det', det2)).toBe(2);
});
afterAll(async () => {
  await cloud?.close();
  await cleanup?.();
});

describe('app models', () => {
  it('adds (latest or pinned), shows, removes, keeps other keys, and mirrors the list in the catalog', async () => {
    const dir = await appFolder();
    let run = await runInProcess(['app', 'models', 'add', 'alice/det', '--json'], { cwd: dir, env: env() });
    expect(run.code, run.stdout).toBe(0);
    expect(run.json()).toMatchObject({ app: `alice/app${apps}`, added: { id: 'alice/det', version: 2 } });
    let file = JSON.parse(await readFile(join(dir, 'alwaysai.app.json'), 'utf8'));
    expect(file).toEqual({ scripts: { start: 'python3 app.py' }, models: { 'alice/det': 2 } });
    expect((await alice.getApp(`alice/app${apps}`)).models).toEqual({ 'alice/det': 2 });

    run = await runInProcess(['app', 'models', 'add', 'alice/det@1'], { cwd: dir, env: env() });
    expect(run.code).toBe(0);
    run = await runInProcess(['app', 'models', 'show'], { cwd: dir, env: cleanEnv() });
    expect(run.stdout.trim()).toBe('alice/det  version 1');

    run = await runInProcess(['app', 'models', 'remove', 'alice/det', '--json'], { cwd: dir, env: env() });
    expect(run.json().models).toEqual({});
    file = JSON.parse(await readFile(join(dir, 'alwaysai.app.json'), 'utf8'));
    expect(file).toEqual({ scripts: { start: 'python3 app.py' }, models: {} });
    expect((await alice.getApp(`alice/app${apps}`)).models).toEqual({});
  });

  it('syncs the catalog list into the file, using "outpost.app" as the app id', async () => {
    const dir = await appFolder({ outpost: { app: 'alice/door-cam' }, models: { 'alice/det': 2 }, other: true });
    await alice.putApp('alice/door-cam', { 'alice/det': 1 });
    const run = await runInProcess(['app', 'models', 'sync', '--json'], { cwd: dir, env: env() });
    expect(run.code, run.stdout).toBe(0);
    expect(JSON.parse(await readFile(join(dir, 'alwaysai.app.json'), 'utf8'))).toEqual({
      outpost: { app: 'alice/door-cam' },
      models: { 'alice/det': 1 },
      other: true,
    });
  });

  const bad: [string, unknown, string[], string, number][] = [
    ['a model that does not exist', undefined, ['add', 'alice/ghost'], 'CATALOG_MODEL_NOT_FOUND', EXIT.NOT_FOUND],
    ['a version that does not exist', undefined, ['add', 'alice/det@99'], 'CATALOG_VERSION_NOT_FOUND', EXIT.NOT_FOUND],
    ['a malformed model id', undefined, ['add', 'alice/det@x'], 'USAGE', EXIT.USAGE],
    ['removing a model not in the app', undefined, ['remove', 'alice/det'], 'APP_MODEL_NOT_IN_APP', EXIT.NOT_FOUND],
    ['a corrupt alwaysai.app.json', '{"models": {', ['add', 'alice/det'], 'APP_JSON_INVALID', EXIT.INVALID_INPUT],
    ['models that are not a map', '{"models": ["alice/det"]}', ['show'], 'APP_JSON_INVALID', EXIT.INVALID_INPUT],
    [
      'an app owned by someone else',
      { outpost: { app: 'bob/app' }, models: {} },
      ['add', 'alice/det'],
      'AUTH_OWNER_FORBIDDEN',
      EXIT.AUTH,
    ],
    [
      'sync of an app the catalog does not know',
      { outpost: { app: 'alice/never-pushed' }, models: {} },
      ['sync'],
      'CATALOG_APP_NOT_FOUND',
      EXIT.NOT_FOUND,
    ],
  ];
  it.each(bad)('refuses %s, leaving file and catalog as they were', async (_n, content, argv, code, exit) => {
    const dir = await appFolder(content);
    if (typeof content === 'string') await writeFile(join(dir, 'alwaysai.app.json'), content);
    const before = await snapshotDir(dir);
    const appId = `alice/app${apps}`;
    const catalogBefore = await alice.getApp(appId).catch((e) => e.code);
    const run = await runInProcess(['app', 'models', ...argv, '--json'], { cwd: dir, env: env() });
    expect(run.errorCode(), run.stdout + run.stderr).toBe(code);
    expect(run.code).toBe(exit);
    expect(await snapshotDir(dir)).toEqual(before);
    expect(await alice.getApp(appId).catch((e) => e.code)).toEqual(catalogBefore);
  });

  it('show without an app file says so', async () => {
    const run = await runInProcess(['app', 'models', 'show'], { cwd: await appFolder(null), env: cleanEnv() });
    expect(run.errorCode()).toBe('APP_JSON_MISSING');
    expect(run.code).toBe(EXIT.NOT_FOUND);
  });
});

describe('app install', () => {
  it('installs verified files, skips what is there, replaces a changed version', async () => {
    const dir = await appFolder({ models: { 'alice/det': 1 } });
    let run = await runInProcess(['app', 'install', '--json'], { cwd: dir, env: env() });
    expect(run.code, run.stdout).toBe(0);
    expect(run.json().models).toEqual([expect.objectContaining({ id: 'alice/det', version: 1, status: 'installed' })]);
    const target = join(dir, 'models', 'alice', 'det');
    expect(sha(await readFile(join(target, 'm.onnx')))).toBe(sha(det1));
    expect(JSON.parse(await readFile(join(target, 'alwaysai.model.json'), 'utf8')).id).toBe('alice/det');

    run = await runInProcess(['app', 'install', '--json'], { cwd: dir, env: env() });
    expect(run.json().models[0]).toMatchObject({ status: 'unchanged', downloadedBytes: 0 });

    await writeFile(join(dir, 'alwaysai.app.json'), JSON.stringify({ models: { 'alice/det': 2 } }));
    run = await runInProcess(['app', 'install'], { cwd: dir, env: env() });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('installed  alice/det version 2');
    expect(sha(await readFile(join(target, 'm.onnx')))).toBe(sha(det2));
    await expect(stat(join(dir, 'models', '.outpost-staging'))).rejects.toThrow();
  });

  it('a blob corrupted on the server is refused and the installed version stays', async () => {
    const bytes = randomBytes(50_000);
    await publish('alice/tamper', bytes);
    const dir = await appFolder({ models: { 'alice/tamper': 1 } });
    expect((await runInProcess(['app', 'install'], { cwd: dir, env: env() })).code).toBe(0);
    const newer = randomBytes(50_000);
    await publish('alice/tamper', newer);
    const blob = join(cloud.dataDir, 'blobs', 'sha256', sha(newer).slice(0, 2), sha(newer));
    const good = await readFile(blob);
    await writeFile(
      blob,
      Buffer.concat([good.subarray(0, 1000), Buffer.from([good[1000] ^ 0xff]), good.subarray(1001)]),
    );
    try {
      await writeFile(join(dir, 'alwaysai.app.json'), JSON.stringify({ models: { 'alice/tamper': 2 } }));
      const before = await snapshotDir(join(dir, 'models', 'alice', 'tamper'));
      const run = await runInProcess(['app', 'install', '--json'], { cwd: dir, env: env() });
      expect(run.errorCode(), run.stdout).toBe('FETCH_HASH_MISMATCH');
      expect(run.code).toBe(EXIT.INTEGRITY);
      expect(await snapshotDir(join(dir, 'models', 'alice', 'tamper'))).toEqual(before);
    } finally {
      await writeFile(blob, good);
    }
  });

  it('an install killed mid-download leaves the old folder intact and the next run resumes', async () => {
    const big1 = randomBytes(1_000_000);
    const big2 = randomBytes(6_000_000);
    await publish('alice/big', big1);
    const dir = await appFolder({ models: { 'alice/big': 1 } });
    expect((await runInProcess(['app', 'install'], { cwd: dir, env: env() })).code).toBe(0);
    const target = join(dir, 'models', 'alice', 'big');
    const before = await snapshotDir(target);

    await publish('alice/big', big2);
    await writeFile(join(dir, 'alwaysai.app.json'), JSON.stringify({ models: { 'alice/big': 2 } }));
    const proxy = await startProxy(new URL(cloud.httpUrl), { stallDownAfter: 2_000_000 });
    const part = join(dir, 'models', '.outpost-staging', 'alice', 'big@2', 'm.onnx.part');
    let partSize = 0;
    try {
      const child = spawnCli(['app', 'install'], {
        cwd: dir,
        env: cleanEnv({ OUTPOST_CLOUD_URL: proxy.url, OUTPOST_TOKEN: aliceToken, HOME: root }),
      });
      partSize = 0;
      for (let i = 0; i < 400 && partSize < 1_000_000; i++) {
        await new Promise((r) => setTimeout(r, 50));
        partSize = (await stat(part).catch(() => ({ size: 0 }))).size;
      }
      expect(partSize).toBeGreaterThanOrEqual(1_000_000);
      child.kill('SIGKILL');
      expect((await child.done).signal).toBe('SIGKILL');
    } finally {
      await proxy.close();
    }
    expect(await snapshotDir(target)).toEqual(before);

    const run = await runInProcess(['app', 'install', '--json'], { cwd: dir, env: env() });
    expect(run.code, run.stdout).toBe(0);
    expect(run.json().models[0]).toMatchObject({ version: 2, status: 'installed', resumed: true });
    // Only what the killed run had not fetched comes over the network again.
    expect(run.json().models[0].downloadedBytes).toBeLessThanOrEqual(big2.length - partSize + 64 * 1024);
    expect(sha(await readFile(join(target, 'm.onnx')))).toBe(sha(big2));
  });

  it('refuses to install without an app file', async () => {
    const dir = await appFolder(null);
    const run = await runInProcess(['app', 'install', '--json'], { cwd: dir, env: env() });
    expect(run.errorCode()).toBe('APP_JSON_MISSING');
    expect(await snapshotDir(dir)).toEqual({});
  });
});

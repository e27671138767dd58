import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runInProcess, spawnCli } from '../helpers/cli.js';
import { configureClassifier, publishFolder, useCliCloud, writeFolder } from '../helpers/model-cli.js';

// Gaps found by walking the developer workflow of docs/cli.md with the real CLI as a new developer
// would: each test here failed before its fix.
const cc = useCliCloud('walk');
const env = (token = cc.token()) =>
  cleanEnv({ OUTPOST_CLOUD_URL: cc.cloud.httpUrl, OUTPOST_TOKEN: token, HOME: cc.root });
const cli = (argv: string[], cwd = cc.root, token?: string) => runInProcess(argv, { cwd, env: env(token) });

/** Publishes `id` (onnx classifier) with these files; returns the version. */
async function publish(id: string, model: Buffer, labels: string): Promise<number> {
  const dir = await writeFolder(join(cc.root, 'src', id.replace('/', '_')), { 'm.onnx': model, 'labels.txt': labels });
  await configureClassifier(dir, env(), { id, size: '32x32' });
  return publishFolder(dir, env());
}

const big = randomBytes(300_000);

beforeAll(async () => {
  expect(await publish('alice/cls', big, 'a\nb\n')).toBe(1);
  expect(await publish('alice/cls', big, 'a\nb\nc\n')).toBe(2);
  expect(await publish('alice/other', randomBytes(1000), 'x\n')).toBe(1);
});

describe('app install keeps ./models equal to the app', () => {
  it('removes the folder of a model taken out of the app, and leaves folders it did not make', async () => {
    const dir = join(cc.root, 'app-prune');
    await mkdir(dir, { recursive: true });
    expect((await cli(['app', 'models', 'add', 'alice/cls'], dir)).code).toBe(0);
    expect((await cli(['app', 'models', 'add', 'alice/other'], dir)).code).toBe(0);
    expect((await cli(['app', 'install'], dir)).code).toBe(0);
    // A model copied by hand, with no install marker: not ours to delete.
    await mkdir(join(dir, 'models', 'hand', 'made'), { recursive: true });
    await writeFile(join(dir, 'models', 'hand', 'made', 'weights.bin'), 'mine');

    expect((await cli(['app', 'models', 'remove', 'alice/other'], dir)).code).toBe(0);
    const run = await cli(['app', 'install', '--json'], dir);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json().removed).toEqual([
      { id: 'alice/other', version: 1, path: join(dir, 'models', 'alice', 'other') },
    ]);
    expect(run.json().models.map((m: { id: string; status: string }) => [m.id, m.status])).toEqual([
      ['alice/cls', 'unchanged'],
    ]);
    expect((await readdir(join(dir, 'models', 'alice'))).sort()).toEqual(['cls']);
    expect(await readFile(join(dir, 'models', 'hand', 'made', 'weights.bin'), 'utf8')).toBe('mine');
    expect(await readdir(join(dir, 'models'))).not.toContain('.outpost-staging');

    // The last model out: the owner folder goes too, the hand-made one stays.
    expect((await cli(['app', 'models', 'remove', 'alice/cls'], dir)).code).toBe(0);
    const last = await cli(['app', 'install'], dir);
    expect(last.code).toBe(0);
    expect(last.stdout).toContain('removed    alice/cls version 2');
    expect((await readdir(join(dir, 'models'))).sort()).toEqual(['hand']);
  });

  it('a new version reuses the unchanged files of the installed one instead of downloading them', async () => {
    const dir = join(cc.root, 'app-reuse');
    await mkdir(dir, { recursive: true });
    expect((await cli(['app', 'models', 'add', 'alice/cls@1'], dir)).code).toBe(0);
    const first = await cli(['app', 'install', '--json'], dir);
    expect(first.json().models[0]).toMatchObject({ status: 'installed', reusedBytes: 0 });
    expect(first.json().models[0].downloadedBytes).toBeGreaterThan(big.length);

    expect((await cli(['app', 'models', 'add', 'alice/cls@2'], dir)).code).toBe(0);
    const second = await cli(['app', 'install', '--json'], dir);
    const m = second.json().models[0];
    expect(m).toMatchObject({ id: 'alice/cls', version: 2, status: 'installed' });
    // Only the labels and alwaysai.model.json changed: the 300 kB model file came from disk.
    expect(m.reusedBytes).toBeGreaterThanOrEqual(big.length);
    expect(m.downloadedBytes).toBeLessThan(big.length);
    expect(await readFile(join(dir, 'models', 'alice', 'cls', 'm.onnx'))).toEqual(big);
    expect(await readFile(join(dir, 'models', 'alice', 'cls', 'labels.txt'), 'utf8')).toBe('a\nb\nc\n');
  });

  it('a locally edited file of the installed version is downloaded again, not reused', async () => {
    const dir = join(cc.root, 'app-edited');
    await mkdir(dir, { recursive: true });
    expect((await cli(['app', 'models', 'add', 'alice/cls@1'], dir)).code).toBe(0);
    expect((await cli(['app', 'install'], dir)).code).toBe(0);
    const file = join(dir, 'models', 'alice', 'cls', 'm.onnx');
    const edited = Buffer.from(big);
    edited[10] ^= 0xff;
    await writeFile(file, edited);
    expect((await cli(['app', 'models', 'add', 'alice/cls@2'], dir)).code).toBe(0);
    const run = await cli(['app', 'install', '--json'], dir);
    // Only alwaysai.model.json (unchanged between the versions) may come from disk.
    expect(run.json().models[0].reusedBytes).toBeLessThan(big.length);
    expect(run.json().models[0].downloadedBytes).toBeGreaterThanOrEqual(big.length);
    expect(await readFile(file)).toEqual(big);
  });
});

describe('messages say what to type where the user types it', () => {
  it('a missing size names the flag form for configure and the JSON form for publish', async () => {
    const dir = join(cc.root, 'nosize');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'm.onnx'), 'x');
    const conf = await cli(
      ['model', 'configure', '--framework', 'onnx', '--purpose', 'Classification', '--model_file', 'm.onnx'],
      dir,
    );
    expect([conf.code, conf.errorCode()]).toEqual([2, 'MODEL_FLAG_MISSING']);
    expect(conf.stderr).toContain('--size 224x224');
    await writeFile(
      join(dir, 'alwaysai.model.json'),
      JSON.stringify({
        id: 'alice/nosize',
        model_parameters: { framework_type: 'onnx', purpose: 'Classification', model_file: 'm.onnx' },
      }),
    );
    const pub = await cli(['model', 'publish'], dir);
    expect([pub.code, pub.errorCode()]).toEqual([3, 'MODEL_FIELD_MISSING']);
    expect(pub.stderr).toContain('"size": [224, 224]');
  });
});

describe('app models with an entry the token cannot see', () => {
  it('add does what was typed beside an entry the catalog lacks, keeps it, and warns about it', async () => {
    const dir = join(cc.root, 'stale-entry');
    await mkdir(dir, { recursive: true });
    const text = JSON.stringify({ models: { 'ghost/none': 3 }, keep: true });
    await writeFile(join(dir, 'alwaysai.app.json'), text);
    const add = await cli(['app', 'models', 'add', 'alice/other'], dir);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stderr).toContain('ghost/none');
    const after = JSON.parse(await readFile(join(dir, 'alwaysai.app.json'), 'utf8'));
    expect(after.keep).toBe(true);
    expect(after.models['ghost/none']).toBe(3);
    expect(Object.keys(after.models).sort()).toEqual(['alice/other', 'ghost/none']);
    expect((await cli(['app', 'models', 'remove', 'ghost/none'], dir)).code).toBe(0);
    // Typing a model the catalog lacks is still refused: that is what was typed.
    const typed = await cli(['app', 'models', 'add', 'ghost/none'], dir);
    expect([typed.code, typed.errorCode()]).toEqual([4, 'CATALOG_MODEL_NOT_FOUND']);
  });
});

describe('fleet and user verbs', () => {
  it('deploying an app whose catalog list is empty is refused instead of answering success', async () => {
    const dir = join(cc.root, 'empty-app');
    await mkdir(dir, { recursive: true });
    expect((await cli(['app', 'models', 'add', 'alice/other'], dir)).code).toBe(0);
    expect((await cli(['app', 'models', 'remove', 'alice/other'], dir)).code).toBe(0);
    const prov = await cli(
      ['device', 'provision', 'walk-1', '--out', join(cc.root, 'walk-1'), '--json'],
      cc.root,
      cc.adminToken,
    );
    expect(prov.code, prov.stderr).toBe(0);
    const before = prov.json().device.revision;
    const run = await cli(['deploy', '--app', 'alice/empty-app', '--all', '--json'], cc.root, cc.adminToken);
    expect(run.code).toBe(4);
    expect(run.errorCode()).toBe('DEPLOY_VERSION_NOT_FOUND');
    expect(run.json().error.message).toContain('empty model list');
    const show = await cli(['device', 'show', 'walk-1', '--json'], cc.root, cc.adminToken);
    expect(show.json().device.revision).toBe(before);
  });

  it('user create prints a token that publishes under its own name; whoami names it', async () => {
    const made = await cli(['user', 'create', 'dora', '--json'], cc.root, cc.adminToken);
    expect(made.code, made.stderr).toBe(0);
    const token = made.json().token as string;
    const who = await cli(['user', 'whoami', '--json'], cc.root, token);
    expect(who.json()).toMatchObject({ user: 'dora', kind: 'user' });
    expect((await cli(['user', 'create', 'dora'], cc.root, cc.adminToken)).errorCode()).toBe('CATALOG_USER_EXISTS');
    const byUser = await cli(['user', 'create', 'eve', '--json'], cc.root, token);
    expect([byUser.code, byUser.errorCode()]).toEqual([5, 'AUTH_FORBIDDEN']);
    expect((await cli(['user', 'create', '../x'], cc.root, cc.adminToken)).code).toBe(2);
  });
});

describe('outpost cloud start', () => {
  it('with --http-port 0 alone also picks a free MQTT port, and its help no longer calls the broker future', async () => {
    const help = await runInProcess(['cloud', 'start', '--help'], { cwd: cc.root, env: cleanEnv() });
    expect(help.stdout).toContain('embedded MQTT broker');
    expect(help.stdout).not.toMatch(/once wired/);
    const dataDir = join(cc.root, 'cloud2');
    const p = spawnCli(['cloud', 'start', '--http-port', '0', '--data-dir', dataDir, '--json'], {
      cwd: cc.root,
      env: cleanEnv({ HOME: cc.root }),
    });
    let info: { http: string; mqtt: string } | undefined;
    for (let i = 0; i < 300 && !info; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const text = await readFile(join(dataDir, 'cloud.json'), 'utf8').catch(() => '');
      if (text) info = JSON.parse(text);
    }
    p.kill('SIGTERM');
    const done = await p.done;
    expect(info, done.stderr).toBeDefined();
    expect(new URL(info!.mqtt).port).not.toBe('1883');
    expect(done.code).toBe(0);
    expect(done.json()).toEqual({ http: info!.http, mqtt: info!.mqtt, adminTokenFile: join(dataDir, 'admin.token') });
    await expect(stat(join(dataDir, 'cloud.json'))).rejects.toThrow();
  });
});

describe('docs/cli.md and --help agree', () => {
  it('every verb of `outpost --help` has a section in docs/cli.md, and its own --help starts with its usage', async () => {
    const doc = await readFile(fileURLToPath(new URL('../../docs/cli.md', import.meta.url)), 'utf8');
    const top = await runInProcess(['--help'], { cwd: cc.root, env: cleanEnv() });
    const verbs = [...top.stdout.matchAll(/^ {2}outpost ([a-z -]+?) {2,}/gm)].map((m) => m[1].trim());
    expect(verbs.length).toBeGreaterThan(25);
    const headings = [...doc.matchAll(/^#{2,4} .*$/gm)].map((m) => m[0]).join('\n');
    for (const v of verbs) {
      expect(headings, `docs/cli.md has no heading for "outpost ${v}"`).toContain(`outpost ${v}`);
      const help = await runInProcess([...v.split(' '), '--help'], { cwd: cc.root, env: cleanEnv() });
      expect(help.code, v).toBe(0);
      expect(help.stdout.split('\n')[0].toLowerCase(), v).toMatch(new RegExp(`^(usage: )?outpost ${v}\\b`));
    }
  });
});

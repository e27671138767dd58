import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../protocol/errors/index.js';
import { cleanEnv, runInProcess, snapshotDir, startProxy } from '../helpers/cli.js';
import { configureClassifier, editModelJson, useCliCloud, writeFolder } from '../helpers/model-cli.js';

// `outpost model publish|list|show|versions` against a real cloud on port 0 with real files.
const cc = useCliCloud('publish', ['alice', 'bob']);
const alice = () => cc.env();

let folders = 0;
/** A configured model folder with a real id. */
async function modelFolder(id = 'alice/cls', size = 64 * 1024): Promise<string> {
  const dir = join(cc.root, `model-${++folders}`);
  await rm(dir, { recursive: true, force: true });
  await writeFolder(dir, { 'm.onnx': randomBytes(size), 'labels.txt': 'cat\ndog\n' });
  await configureClassifier(dir, alice(), { id, size: '224x224' });
  return dir;
}

/** What the catalog holds: every model with its versions, and every file under blobs/. */
async function catalogState(): Promise<unknown> {
  const models = await cc.admin.listModels();
  const detail = await Promise.all(models.map((m) => cc.admin.getModel(m.id)));
  return {
    detail: detail.map((d) => ({ id: d.id, versions: d.versions })),
    blobs: await snapshotDir(join(cc.cloud.dataDir, 'blobs')),
  };
}

describe('publish and query', () => {
  it('publishes versions that only grow, skips unchanged content, and lists them', async () => {
    const dir = await modelFolder('alice/cls');
    let run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: alice() });
    expect(run.code, run.stdout).toBe(0);
    expect(run.json()).toMatchObject({ id: 'alice/cls', version: 1, uploaded: 3 });

    run = await runInProcess(['model', 'publish'], { cwd: dir, env: alice() });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('unchanged: still version 1');

    run = await runInProcess(['model', 'publish', '--force', '--json'], { cwd: dir, env: alice() });
    expect(run.json()).toMatchObject({ version: 2, uploaded: 0 });

    await writeFile(join(dir, 'labels.txt'), 'cat\ndog\nbird\n');
    run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: alice() });
    expect(run.json()).toMatchObject({ version: 3, uploaded: 1 });

    run = await runInProcess(['model', 'versions', 'alice/cls', '--json'], { cwd: dir, env: alice() });
    expect(run.json().versions.map((v: { version: number }) => v.version)).toEqual([1, 2, 3]);

    run = await runInProcess(['model', 'list', '--json'], { cwd: dir, env: alice() });
    expect(run.json().models).toContainEqual(expect.objectContaining({ id: 'alice/cls', latest: 3 }));

    run = await runInProcess(['model', 'show', 'alice/cls', '--version', '1', '--json'], { cwd: dir, env: alice() });
    const v1 = run.json();
    expect(v1.version).toBe(1);
    expect(v1.files.map((f: { path: string }) => f.path).sort()).toEqual([
      'alwaysai.model.json',
      'labels.txt',
      'm.onnx',
    ]);
    const onnx = v1.files.find((f: { path: string }) => f.path === 'm.onnx');
    const { createHash } = await import('node:crypto');
    expect(onnx.sha256).toBe(
      createHash('sha256')
        .update(await readFile(join(dir, 'm.onnx')))
        .digest('hex'),
    );

    run = await runInProcess(['model', 'show', 'alice/cls'], { cwd: dir, env: alice() });
    expect(run.stdout).toContain('alice/cls version 3');
  });

  it('finds the local cloud and its admin token through the data dir', async () => {
    const run = await runInProcess(['model', 'list', '--json'], {
      cwd: cc.root,
      env: cleanEnv({ OUTPOST_DATA_DIR: cc.cloud.dataDir, HOME: cc.root }),
    });
    expect(run.code, run.stdout).toBe(0);
    expect(run.json().models.map((m: { id: string }) => m.id)).toContain('alice/cls');
  });
});

describe('publish refuses bad input and leaves the catalog and the folder as they were', () => {
  const cases: [string, (dir: string) => Promise<NodeJS.ProcessEnv | void>, string, number][] = [
    [
      'the placeholder id',
      (d) => editModelJson(d, (m) => ({ ...m, id: '<username>/<modelname>' })),
      'MODEL_PLACEHOLDER_ID',
      EXIT.INVALID_INPUT,
    ],
    [
      "another owner's id",
      (d) => editModelJson(d, (m) => ({ ...m, id: 'bob/stolen' })),
      'AUTH_OWNER_FORBIDDEN',
      EXIT.AUTH,
    ],
    [
      'an id that is not owner/name',
      (d) => editModelJson(d, (m) => ({ ...m, id: 'just-a-name' })),
      'MODEL_FIELD_INVALID',
      EXIT.INVALID_INPUT,
    ],
    [
      'corrupt JSON',
      (d) => writeFile(join(d, 'alwaysai.model.json'), '{"id": "alice/x",'),
      'MODEL_JSON_SYNTAX',
      EXIT.INVALID_INPUT,
    ],
    ['no alwaysai.model.json', (d) => rm(join(d, 'alwaysai.model.json')), 'MODEL_JSON_MISSING', EXIT.NOT_FOUND],
    [
      'an unknown framework in the file',
      (d) =>
        editModelJson(d, (m) => ({ ...m, model_parameters: { ...m.model_parameters, framework_type: 'pytorch' } })),
      'MODEL_FIELD_INVALID',
      EXIT.INVALID_INPUT,
    ],
    [
      'path traversal in the file',
      (d) =>
        editModelJson(d, (m) => ({
          ...m,
          model_parameters: { ...m.model_parameters, label_file: '../../cloud/admin.token' },
        })),
      'MODEL_PATH_OUTSIDE',
      EXIT.INVALID_INPUT,
    ],
    ['a file that is gone', (d) => rm(join(d, 'm.onnx')), 'MODEL_FILE_MISSING', EXIT.NOT_FOUND],
    [
      'a .h5 model in the file',
      (d) => editModelJson(d, (m) => ({ ...m, model_parameters: { ...m.model_parameters, model_file: 'm.h5' } })),
      'MODEL_H5_UNSUPPORTED',
      EXIT.INVALID_INPUT,
    ],
    [
      'no token',
      async () => cleanEnv({ OUTPOST_CLOUD_URL: cc.cloud.httpUrl, HOME: cc.root }),
      'AUTH_TOKEN_MISSING',
      EXIT.AUTH,
    ],
    [
      'a wrong token',
      async () => cleanEnv({ OUTPOST_CLOUD_URL: cc.cloud.httpUrl, OUTPOST_TOKEN: 'x'.repeat(40), HOME: cc.root }),
      'AUTH_TOKEN_INVALID',
      EXIT.AUTH,
    ],
    [
      'no cloud configured',
      async () => cleanEnv({ HOME: cc.root, OUTPOST_DATA_DIR: join(cc.root, 'nothing-here') }),
      'CLI_NO_CLOUD',
      EXIT.UNAVAILABLE,
    ],
    [
      'a cloud that is down',
      async () => cleanEnv({ OUTPOST_CLOUD_URL: 'http://127.0.0.1:9', OUTPOST_TOKEN: cc.token(), HOME: cc.root }),
      'CLOUD_UNREACHABLE',
      EXIT.UNAVAILABLE,
    ],
  ];

  it.each(cases)('%s', async (_name, setup, code, exit) => {
    const dir = await modelFolder(`alice/bad-${folders}`);
    const env = (await setup(dir)) ?? alice();
    const catalog = await catalogState();
    const folder = await snapshotDir(dir);
    const run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env });
    expect(run.errorCode(), run.stdout + run.stderr).toBe(code);
    expect(run.code).toBe(exit);
    expect(await catalogState()).toEqual(catalog);
    expect(await snapshotDir(dir)).toEqual(folder);
  });

  it('a truncated upload stores no blob and creates no version', async () => {
    const dir = await modelFolder('alice/cut', 2 * 1024 * 1024);
    const proxy = await startProxy(new URL(cc.cloud.httpUrl), { cutUpAfter: 512 * 1024 });
    try {
      const catalog = await catalogState();
      const run = await runInProcess(['model', 'publish', '--json'], {
        cwd: dir,
        env: cleanEnv({ OUTPOST_CLOUD_URL: proxy.url, OUTPOST_TOKEN: cc.token(), HOME: cc.root }),
      });
      expect(run.errorCode(), run.stdout).toBe('CLOUD_UNREACHABLE');
      expect(run.code).toBe(EXIT.UNAVAILABLE);
      expect(proxy.stats.up).toBeGreaterThan(256 * 1024);
      // The server notices the cut asynchronously; wait until its temp file is gone.
      for (let i = 0; i < 100 && JSON.stringify(await catalogState()) !== JSON.stringify(catalog); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(await catalogState()).toEqual(catalog);
    } finally {
      await proxy.close();
    }
    const again = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: alice() });
    expect(again.json()).toMatchObject({ id: 'alice/cut', version: 1 });
  });

  it.each([
    [['model', 'show', 'alice/nope'], 'CATALOG_MODEL_NOT_FOUND', EXIT.NOT_FOUND],
    [['model', 'show', 'alice/cls', '--version', '99'], 'CATALOG_VERSION_NOT_FOUND', EXIT.NOT_FOUND],
    [['model', 'show', 'alice/cls', '--version', 'two'], 'USAGE', EXIT.USAGE],
    [['model', 'versions', 'not-an-id'], 'USAGE', EXIT.USAGE],
    [['model', 'show'], 'USAGE', EXIT.USAGE],
    [['model', 'frobnicate'], 'USAGE', EXIT.USAGE],
  ])('query %j fails with %s', async (argv, code, exit) => {
    const run = await runInProcess([...argv, '--json'], { cwd: cc.root, env: alice() });
    expect(run.errorCode(), run.stdout + run.stderr).toBe(code);
    expect(run.code).toBe(exit);
  });
});

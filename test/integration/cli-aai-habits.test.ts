import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { EXIT } from '../../protocol/errors/index.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { configureClassifier, onnxWithInput, publishFolder, useCliCloud, writeFolder } from '../helpers/model-cli.js';

/**
 * The habits of aai users, through the real CLI against a real cloud: alwaysai.app.json files from
 * real alwaysAI apps that list public-catalog models (alwaysai/mobilenet_ssd) this catalog does not
 * have. aai's flag syntax for `model configure`: cli-configure-syntax.test.ts.
 */
const cc = useCliCloud('aai');
const env = () => cc.env();
let alice: CloudClient;
let folders = 0;
const folder = (files: Record<string, string | Uint8Array> = {}) => writeFolder(join(cc.root, `f${++folders}`), files);

beforeAll(async () => {
  alice = new CloudClient({ url: cc.cloud.httpUrl, token: cc.token() });
  // One model this catalog has.
  const dir = await folder({ 'm.onnx': onnxWithInput([1, 3, 8, 8]), 'labels.txt': 'a\n' });
  await configureClassifier(dir, env(), { id: 'alice/det' });
  await publishFolder(dir, env());
});

describe('foreign alwaysai.app.json files', () => {
  const foreign = () => ({
    scripts: { start: 'python3 app.py' },
    models: { 'alwaysai/mobilenet_ssd': 4, 'alwaysai/res10_300x300_ssd_iter_140000': 1 },
  });

  it('app models add does what was typed, keeps the catalog-less entries and warns about them', async () => {
    const dir = await folder({ 'alwaysai.app.json': JSON.stringify(foreign()) });
    const run = await runInProcess(['app', 'models', 'add', 'alice/det', '--json'], { cwd: dir, env: env() });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('warning: alwaysai.app.json lists alwaysai/mobilenet_ssd version 4');
    expect(run.stderr).toContain('alwaysai/res10_300x300_ssd_iter_140000 version 1');
    const file = JSON.parse(await readFile(join(dir, 'alwaysai.app.json'), 'utf8'));
    expect(file.models).toEqual({ ...foreign().models, 'alice/det': 1 });
    expect(file.scripts).toEqual({ start: 'python3 app.py' });
    const out = run.json<{ app: string; missing: string[] }>();
    expect(out.missing.sort()).toEqual(['alwaysai/mobilenet_ssd', 'alwaysai/res10_300x300_ssd_iter_140000']);
    // The catalog's list holds only what it has.
    expect((await alice.getApp(out.app)).models).toEqual({ 'alice/det': 1 });
  });

  it('app models remove removes what was typed (a foreign entry too) and keeps the rest', async () => {
    const dir = await folder({
      'alwaysai.app.json': JSON.stringify({ ...foreign(), models: { ...foreign().models, 'alice/det': 1 } }),
    });
    let run = await runInProcess(['app', 'models', 'remove', 'alice/det'], { cwd: dir, env: env() });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('warning:');
    expect(JSON.parse(await readFile(join(dir, 'alwaysai.app.json'), 'utf8')).models).toEqual(foreign().models);
    run = await runInProcess(['app', 'models', 'remove', 'alwaysai/mobilenet_ssd'], { cwd: dir, env: env() });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(dir, 'alwaysai.app.json'), 'utf8')).models).toEqual({
      'alwaysai/res10_300x300_ssd_iter_140000': 1,
    });
  });

  it('app models show lists every entry without a cloud', async () => {
    const dir = await folder({ 'alwaysai.app.json': JSON.stringify(foreign()) });
    const run = await runInProcess(['app', 'models', 'show'], { cwd: dir, env: cleanEnv({ HOME: cc.root }) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('alwaysai/mobilenet_ssd  version 4');
  });

  it('adding a model the catalog lacks, typed by the user, still fails and changes nothing', async () => {
    const dir = await folder({ 'alwaysai.app.json': JSON.stringify(foreign()) });
    const before = await readFile(join(dir, 'alwaysai.app.json'), 'utf8');
    const run = await runInProcess(['app', 'models', 'add', 'alice/nope'], { cwd: dir, env: env() });
    expect(run.code).toBe(EXIT.NOT_FOUND);
    expect(run.stderr).toContain('CATALOG_MODEL_NOT_FOUND');
    expect(await readFile(join(dir, 'alwaysai.app.json'), 'utf8')).toBe(before);
  });

  it('app install names what it could not fetch, installs the rest, and exits non-zero', async () => {
    const dir = await folder({
      'alwaysai.app.json': JSON.stringify({ ...foreign(), models: { ...foreign().models, 'alice/det': 1 } }),
    });
    const run = await runInProcess(['app', 'install', '--json'], { cwd: dir, env: env() });
    expect(run.code).toBe(EXIT.NOT_FOUND);
    expect(run.stderr).toContain('could not fetch 2 of 3 models');
    expect(run.stderr).toMatch(/alwaysai\/mobilenet_ssd version 4: CATALOG_MODEL_NOT_FOUND/);
    const out = run.json<{ models: { id: string; status: string }[]; missing: { id: string }[] }>();
    expect(out.models).toEqual([expect.objectContaining({ id: 'alice/det', status: 'installed' })]);
    expect(out.missing.map((m) => m.id).sort()).toEqual([
      'alwaysai/mobilenet_ssd',
      'alwaysai/res10_300x300_ssd_iter_140000',
    ]);
    expect((await stat(join(dir, 'models', 'alice', 'det', 'm.onnx'))).isFile()).toBe(true);
  });
});

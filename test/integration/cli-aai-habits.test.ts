import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { EXIT } from '../../protocol/errors/index.js';
import { GraphBuilder } from '../fixtures/onnx/graph.js';
import { cleanEnv, runInProcess, spawnCli, tempDir } from '../helpers/cli.js';

/**
 * The habits of aai users, through the real CLI against a real cloud: multi-value flags, a model
 * file that declares its own input size, and alwaysai.app.json files from real alwaysAI apps that
 * list public-catalog models (alwaysai/mobilenet_ssd) this catalog does not have.
 */
let cloud: Cloud;
let root: string;
let cleanup: () => Promise<void>;
let token: string;
let alice: CloudClient;
const env = () => cleanEnv({ OUTPOST_CLOUD_URL: cloud.httpUrl, OUTPOST_TOKEN: token, HOME: root });
let folders = 0;
async function folder(files: Record<string, string | Uint8Array> = {}): Promise<string> {
  const dir = join(root, `f${++folders}`);
  await mkdir(dir, { recursive: true });
  for (const [n, c] of Object.entries(files)) await writeFile(join(dir, n), c);
  return dir;
}
const modelJson = async (dir: string) => JSON.parse(await readFile(join(dir, 'alwaysai.model.json'), 'utf8'));

/** A tiny ONNX model with the given input dims (identity through a Relu). */
function onnxWithInput(dims: number[]): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('image', dims);
  g.rename(g.op('Relu', [x]), 'out');
  g.output('out', dims);
  return g.toBytes('sized');
}

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir('aai'));
  cloud = await startCloud({ dataDir: join(root, 'cloud'), host: '127.0.0.1', httpPort: 0, mqttPort: 0 });
  const admin = new CloudClient({ url: cloud.httpUrl, token: (await readFile(cloud.adminTokenFile, 'utf8')).trim() });
  token = (await admin.createUser('alice')).token;
  alice = new CloudClient({ url: cloud.httpUrl, token });
  // One model this catalog has.
  const dir = await folder({ 'm.onnx': onnxWithInput([1, 3, 8, 8]), 'labels.txt': 'a\n' });
  const conf = await runInProcess(
    [
      'model',
      'configure',
      '--framework',
      'onnx',
      '--purpose',
      'Classification',
      '--model_file',
      'm.onnx',
      '--label_file',
      'labels.txt',
    ],
    { cwd: dir, env: env() },
  );
  expect(conf.code, conf.stderr).toBe(0);
  await writeFile(join(dir, 'alwaysai.model.json'), JSON.stringify({ ...(await modelJson(dir)), id: 'alice/det' }));
  const pub = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: env() });
  expect(pub.code, pub.stderr).toBe(0);
});
afterAll(async () => {
  await cloud?.close();
  await cleanup?.();
});

describe('model configure: aai syntax', () => {
  it('takes --size 300 300, --mean 104 117 123 and --output_layer_names a b, as aai does', async () => {
    const dir = await folder({
      'ssd.caffemodel': randomBytes(64),
      'ssd.prototxt': 'name: "x"\n',
      'l.txt': 'bg\nperson\n',
    });
    const run = await spawnCli(
      [
        'model',
        'configure',
        '--framework',
        'caffe',
        '--model_file',
        'ssd.caffemodel',
        '--config_file',
        'ssd.prototxt',
        '--label_file',
        'l.txt',
        '--purpose',
        'ObjectDetection',
        '--size',
        '300',
        '300',
        '--mean',
        '104',
        '117',
        '123',
        '--scalefactor',
        '0.007843',
        '--output_layer_names',
        'detection_out',
        'extra_out',
        '--swaprb',
      ],
      { cwd: dir, env: env() },
    ).done;
    expect(run.code, run.stderr).toBe(0);
    expect((await modelJson(dir)).model_parameters).toMatchObject({
      size: [300, 300],
      mean: [104, 117, 123],
      scalefactor: 0.007843,
      output_layer_names: ['detection_out', 'extra_out'],
      swaprb: true,
    });
  });

  it('WxH and R,G,B still work and give the same file; a half-typed multi-value flag is a usage error', async () => {
    const files = { 'm.onnx': onnxWithInput([1, 3, 4, 4]) };
    const base = ['model', 'configure', '--framework', 'onnx', '--model_file', 'm.onnx', '--purpose', 'Classification'];
    const a = await folder(files),
      b = await folder(files);
    expect((await runInProcess([...base, '--size', '4x4', '--mean', '1,2,3'], { cwd: a, env: env() })).code).toBe(0);
    expect(
      (await runInProcess([...base, '--size', '4', '4', '--mean', '1', '2', '3'], { cwd: b, env: env() })).code,
    ).toBe(0);
    expect((await modelJson(a)).model_parameters).toEqual((await modelJson(b)).model_parameters);
    const bad = await runInProcess([...base, '--size', '300', '--mean', '1', '2'], { cwd: a, env: env() });
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toContain('MODEL_FLAG_INVALID');
  });

  it('--help shows the multi-value syntax', async () => {
    const run = await runInProcess(['model', 'configure', '--help'], { cwd: root, env: env() });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('--size W H');
    expect(run.stdout).toMatch(/R G B/);
    expect(run.stdout).toMatch(/--output_layer_names L\.\. .*a b c/);
  });

  it('--framework onnx without --size reads the size from the model, writes it and says so (NCHW and NHWC)', async () => {
    for (const [dims, want] of [
      [
        [1, 3, 48, 192],
        [192, 48],
      ],
      [
        [1, 128, 96, 3],
        [96, 128],
      ],
    ] as const) {
      const dir = await folder({ 'm.onnx': onnxWithInput([...dims]) });
      const run = await runInProcess(
        ['model', 'configure', '--framework', 'onnx', '--model_file', 'm.onnx', '--purpose', 'Classification'],
        { cwd: dir, env: env() },
      );
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(
        `size ${want[0]}x${want[1]} read from the input "image" of m.onnx (no --size given)`,
      );
      expect((await modelJson(dir)).model_parameters.size).toEqual(want);
    }
  });

  it('a darknet cfg and a caffe prototxt declare their size too; a dynamic ONNX input still needs --size', async () => {
    const dn = await folder({
      'y.weights': randomBytes(16),
      'y.cfg': '[net]\nwidth=416\nheight=288\n[convolutional]\n',
      'y.names': 'a\n',
    });
    let run = await runInProcess(
      [
        'model',
        'configure',
        '--framework',
        'darknet',
        '--model_file',
        'y.weights',
        '--config_file',
        'y.cfg',
        '--label_file',
        'y.names',
        '--purpose',
        'ObjectDetection',
        '--json',
      ],
      { cwd: dn, env: env() },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.json<{ sizeFrom: string }>().sizeFrom).toBe('[net] of y.cfg');
    expect((await modelJson(dn)).model_parameters.size).toEqual([416, 288]);
    const cf = await folder({
      'c.caffemodel': randomBytes(16),
      'c.prototxt': 'input: "data"\ninput_shape { dim: 1 dim: 3 dim: 224 dim: 320 }\n',
    });
    run = await runInProcess(
      [
        'model',
        'configure',
        '--framework',
        'caffe',
        '--model_file',
        'c.caffemodel',
        '--config_file',
        'c.prototxt',
        '--purpose',
        'Classification',
      ],
      { cwd: cf, env: env() },
    );
    expect(run.code, run.stderr).toBe(0);
    expect((await modelJson(cf)).model_parameters.size).toEqual([320, 224]);
    // dimValue 0 is how this builder writes an unknown dimension.
    const dyn = await folder({ 'd.onnx': onnxWithInput([1, 3, 0, 0]) });
    run = await runInProcess(
      ['model', 'configure', '--framework', 'onnx', '--model_file', 'd.onnx', '--purpose', 'Classification'],
      {
        cwd: dyn,
        env: env(),
      },
    );
    expect(run.code).toBe(EXIT.USAGE);
    expect(run.stderr).toContain('MODEL_FLAG_MISSING');
  });
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
    const run = await runInProcess(['app', 'models', 'show'], { cwd: dir, env: cleanEnv({ HOME: root }) });
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

import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../protocol/errors/index.js';
import { cleanEnv, runInProcess, spawnCli, tempDir } from '../helpers/cli.js';
import { onnxWithInput, useSeedFolder, writeFolder } from '../helpers/model-cli.js';

/**
 * `outpost model configure`'s flag syntax as aai users type it: multi-value flags (--size 300 300),
 * WxH and R,G,B forms, bare booleans, and the size read from the model file when --size is absent.
 * No cloud: configure only writes the folder.
 */
let root: string;
let cleanupRoot: () => Promise<void>;
beforeAll(async () => {
  ({ dir: root, cleanup: cleanupRoot } = await tempDir('configure-syntax'));
});
afterAll(() => cleanupRoot());
const env = () => cleanEnv({ HOME: root });
let folders = 0;
const folder = (files: Record<string, string | Uint8Array> = {}) => writeFolder(join(root, `f${++folders}`), files);
const modelJsonOf = async (d: string) => JSON.parse(await readFile(join(d, 'alwaysai.model.json'), 'utf8'));

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
    expect((await modelJsonOf(dir)).model_parameters).toMatchObject({
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
    expect((await modelJsonOf(a)).model_parameters).toEqual((await modelJsonOf(b)).model_parameters);
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
      expect((await modelJsonOf(dir)).model_parameters.size).toEqual(want);
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
    expect((await modelJsonOf(dn)).model_parameters.size).toEqual([416, 288]);
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
    expect((await modelJsonOf(cf)).model_parameters.size).toEqual([320, 224]);
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

describe('model configure: values in one word', () => {
  const seed = useSeedFolder();
  const envOne = cleanEnv();

  it('parses sizes, means, bare booleans and keeps the id when reconfiguring', async () => {
    let run = await runInProcess(
      [
        'model',
        'configure',
        '--framework',
        'onnx',
        '--purpose',
        'SemanticSegmentation',
        '--model_file',
        'seg.onnx',
        '--colors_file',
        'colors.txt',
        '--size',
        '512x256',
        '--mean',
        '104,117,123',
        '--scalefactor',
        '0.5',
        '--swaprb',
        '--softmax',
        'true',
        '--crop',
        'false',
        '--output_layer_names',
        'out1,out2',
      ],
      { cwd: seed.dir, env: envOne },
    );
    expect(run.code, run.stderr).toBe(0);
    const m = await seed.modelJson();
    expect(m.model_parameters).toMatchObject({
      size: [512, 256],
      mean: [104, 117, 123],
      scalefactor: 0.5,
      swaprb: true,
      softmax: true,
      crop: false,
      output_layer_names: ['out1', 'out2'],
      colors_file: 'colors.txt',
    });
    await writeFile(
      join(seed.dir, 'alwaysai.model.json'),
      JSON.stringify({ ...m, id: 'alice/seg', license: 'MIT', notes: 'keep me' }),
    );
    run = await runInProcess(
      [
        'model',
        'configure',
        '--framework',
        'onnx',
        '--purpose',
        'Classification',
        '--model_file',
        'seg.onnx',
        '--size',
        '224,224',
        '--mean',
        '3',
      ],
      { cwd: seed.dir, env: envOne },
    );
    expect(run.code, run.stderr).toBe(0);
    const again = await seed.modelJson();
    expect(again).toMatchObject({ id: 'alice/seg', license: 'MIT', notes: 'keep me' });
    expect(again.model_parameters).toMatchObject({
      purpose: 'Classification',
      size: [224, 224],
      mean: [3, 3, 3],
      colors_file: '',
    });
  });
});

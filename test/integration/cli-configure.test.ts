import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../protocol/errors/index.js';
import { cleanEnv, runInProcess, snapshotDir, spawnCli, tempDir } from '../helpers/cli.js';

// `outpost model configure` on real model folders: the seed's three example commands, then bad
// inputs that must each give their code and exit code and leave the folder exactly as it was.
let dir: string;
let cleanup: () => Promise<void>;
const env = cleanEnv();

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('configure'));
  await writeFile(join(dir, 'yolo.weights'), Buffer.alloc(1024, 7));
  await writeFile(join(dir, 'yolo.cfg'), '[net]\nwidth=320\nheight=320\n');
  await writeFile(join(dir, 'yolo.names'), 'person\nbicycle\ncar\n');
  await writeFile(join(dir, 'newModel.bin'), Buffer.alloc(2048, 1));
  await writeFile(join(dir, 'newModel.names'), 'a\nb\n');
  await writeFile(join(dir, 'newHailoModel.bin'), Buffer.alloc(512, 3));
  await writeFile(join(dir, 'newHailoModel.names'), 'x\ny\n');
  await writeFile(join(dir, 'seg.onnx'), Buffer.alloc(256, 9));
  await writeFile(join(dir, 'colors.txt'), '0,0,0\n255,0,0\n');
  await writeFile(join(dir, 'keras.h5'), 'HDF');
});
afterEach(() => cleanup());

async function modelJson(): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(dir, 'alwaysai.model.json'), 'utf8'));
}

describe('the seed examples', () => {
  it('Yolo object detection (darknet), through the real executable', async () => {
    const run = await spawnCli(
      [
        'model',
        'configure',
        '--framework',
        'darknet',
        '--purpose',
        'ObjectDetection',
        '--model_file',
        'yolo.weights',
        '--config_file',
        'yolo.cfg',
        '--label_file',
        'yolo.names',
      ],
      { cwd: dir, env },
    ).done;
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const m = await modelJson();
    expect(m.id).toBe('<username>/<modelname>');
    expect(m.public).toBe(false);
    expect(m.model_parameters).toMatchObject({
      framework_type: 'darknet',
      purpose: 'ObjectDetection',
      model_file: 'yolo.weights',
      config_file: 'yolo.cfg',
      label_file: 'yolo.names',
      size: [320, 320],
      mean: [0, 0, 0],
      scalefactor: 1,
      crop: false,
      swaprb: false,
      softmax: false,
    });
    for (const k of [
      'accuracy',
      'dataset',
      'inference_time',
      'license',
      'mean_average_precision_top_1',
      'mean_average_precision_top_5',
      'website_url',
    ]) {
      expect(m).toHaveProperty(k);
    }
    expect(Object.keys(m.model_parameters)).toEqual(
      expect.arrayContaining([
        'colors_file',
        'output_layer_names',
        'device',
        'architecture',
        'quantize_input',
        'quantize_output',
        'input_format',
        'output_format',
      ]),
    );
  });

  it('Tensor-RT object detection', async () => {
    const run = await runInProcess(
      [
        'model',
        'configure',
        '--framework',
        'tensor-rt',
        '--model_file',
        'newModel.bin',
        '--label_file',
        'newModel.names',
        '--purpose',
        'ObjectDetection',
        '--architecture',
        'yolo',
        '--device',
        'nano',
      ],
      { cwd: dir, env },
    );
    expect(run.code, run.stderr).toBe(0);
    expect((await modelJson()).model_parameters).toMatchObject({
      framework_type: 'tensor-rt',
      architecture: 'yolo',
      device: 'nano',
      size: [320, 320],
    });
  });

  it('Hailo object detection, with --flag false booleans', async () => {
    const run = await runInProcess(
      [
        'model',
        'configure',
        '--framework',
        'hailo',
        '--model_file',
        'newHailoModel.bin',
        '--label_file',
        'newHailoModel.names',
        '--purpose',
        'ObjectDetection',
        '--architecture',
        'yolov3',
        '--quantize_input',
        'false',
        '--quantize_output',
        'false',
        '--input_format',
        'auto',
        '--output_format',
        'none',
        '--json',
      ],
      { cwd: dir, env },
    );
    expect(run.code, run.stdout).toBe(0);
    expect(run.json().manifest.model_parameters).toMatchObject({
      quantize_input: false,
      quantize_output: false,
      input_format: 'auto',
      output_format: 'none',
      architecture: 'yolov3',
    });
    expect((await modelJson()).model_parameters.quantize_input).toBe(false);
  });

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
      { cwd: dir, env },
    );
    expect(run.code, run.stderr).toBe(0);
    const m = await modelJson();
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
      join(dir, 'alwaysai.model.json'),
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
      { cwd: dir, env },
    );
    expect(run.code, run.stderr).toBe(0);
    const again = await modelJson();
    expect(again).toMatchObject({ id: 'alice/seg', license: 'MIT', notes: 'keep me' });
    expect(again.model_parameters).toMatchObject({
      purpose: 'Classification',
      size: [224, 224],
      mean: [3, 3, 3],
      colors_file: '',
    });
  });

  it('prints help for the verb', async () => {
    const run = await runInProcess(['model', 'configure', '--help'], { cwd: dir, env });
    expect(run.code).toBe(0);
    for (const flag of [
      '--framework',
      '--model_file',
      '--mean',
      '--scalefactor',
      '--size',
      '--purpose',
      '--crop',
      '--config_file',
      '--label_file',
      '--colors_file',
      '--swaprb',
      '--softmax',
      '--output_layer_names',
      '--device',
      '--architecture',
      '--quantize_input',
      '--quantize_output',
      '--input_format',
      '--output_format',
    ]) {
      expect(run.stdout).toContain(flag);
    }
  });
});

const darknet = [
  '--framework',
  'darknet',
  '--purpose',
  'ObjectDetection',
  '--model_file',
  'yolo.weights',
  '--label_file',
  'yolo.names',
];
const onnx = ['--framework', 'onnx', '--purpose', 'Classification', '--model_file', 'seg.onnx', '--size', '224x224'];

describe('bad inputs leave the folder unchanged', () => {
  const cases: [string, string[], string, number, (() => Promise<void>)?][] = [
    [
      'unknown framework',
      ['--framework', 'keras', '--purpose', 'Classification', '--model_file', 'seg.onnx'],
      'MODEL_FLAG_INVALID',
      EXIT.USAGE,
    ],
    [
      'unknown purpose',
      ['--framework', 'onnx', '--purpose', 'Counting', '--model_file', 'seg.onnx', '--size', '1x1'],
      'MODEL_FLAG_INVALID',
      EXIT.USAGE,
    ],
    ['no framework', ['--purpose', 'Classification', '--model_file', 'seg.onnx'], 'MODEL_FLAG_MISSING', EXIT.USAGE],
    ['no purpose', ['--framework', 'onnx', '--model_file', 'seg.onnx'], 'MODEL_FLAG_MISSING', EXIT.USAGE],
    [
      'tensor-rt without --device',
      [
        '--framework',
        'tensor-rt',
        '--purpose',
        'ObjectDetection',
        '--model_file',
        'newModel.bin',
        '--label_file',
        'newModel.names',
        '--architecture',
        'yolo',
      ],
      'MODEL_FLAG_MISSING',
      EXIT.USAGE,
    ],
    [
      'tensor-rt with a hailo architecture',
      [
        '--framework',
        'tensor-rt',
        '--purpose',
        'ObjectDetection',
        '--model_file',
        'newModel.bin',
        '--label_file',
        'newModel.names',
        '--architecture',
        'yolov3',
        '--device',
        'nano',
      ],
      'MODEL_FLAG_INVALID',
      EXIT.USAGE,
    ],
    [
      'hailo without --architecture',
      [
        '--framework',
        'hailo',
        '--purpose',
        'ObjectDetection',
        '--model_file',
        'newHailoModel.bin',
        '--label_file',
        'newHailoModel.names',
        '--input_format',
        'auto',
        '--output_format',
        'none',
      ],
      'MODEL_FLAG_MISSING',
      EXIT.USAGE,
    ],
    [
      'hailo without --input_format',
      [
        '--framework',
        'hailo',
        '--purpose',
        'ObjectDetection',
        '--model_file',
        'newHailoModel.bin',
        '--label_file',
        'newHailoModel.names',
        '--architecture',
        'yolov3',
        '--output_format',
        'none',
      ],
      'MODEL_FLAG_MISSING',
      EXIT.USAGE,
    ],
    [
      'detection without --label_file',
      ['--framework', 'darknet', '--purpose', 'ObjectDetection', '--model_file', 'yolo.weights'],
      'MODEL_FLAG_MISSING',
      EXIT.USAGE,
    ],
    ['a bad --size', [...onnx, '--size', '300'], 'MODEL_FLAG_INVALID', EXIT.USAGE],
    ['a negative --size', [...onnx, '--size=-3x4'], 'MODEL_FLAG_INVALID', EXIT.USAGE],
    ['a bad --mean', [...onnx, '--mean', '1,2'], 'MODEL_FLAG_INVALID', EXIT.USAGE],
    ['a bad boolean', [...onnx, '--crop=maybe'], 'MODEL_FLAG_INVALID', EXIT.USAGE],
    [
      'a .h5 model',
      ['--framework', 'tensorflow', '--purpose', 'Classification', '--model_file', 'keras.h5'],
      'MODEL_H5_UNSUPPORTED',
      EXIT.INVALID_INPUT,
    ],
    [
      'a missing model file',
      ['--framework', 'onnx', '--purpose', 'Classification', '--model_file', 'nope.onnx', '--size', '1x1'],
      'MODEL_FILE_MISSING',
      EXIT.NOT_FOUND,
    ],
    [
      'a missing label file',
      [...darknet.slice(0, 6), '--label_file', 'nope.names'],
      'MODEL_FILE_MISSING',
      EXIT.NOT_FOUND,
    ],
    ['path traversal', [...onnx, '--label_file', '../etc/passwd'], 'MODEL_PATH_OUTSIDE', EXIT.INVALID_INPUT],
    ['an absolute path', [...onnx, '--config_file', '/etc/hostname'], 'MODEL_PATH_OUTSIDE', EXIT.INVALID_INPUT],
    [
      'a symlink out of the folder',
      [...onnx, '--label_file', 'escape.txt'],
      'MODEL_PATH_OUTSIDE',
      EXIT.INVALID_INPUT,
      async () => {
        await symlink('/etc/hostname', join(dir, 'escape.txt'));
      },
    ],
    [
      'a directory as model file',
      ['--framework', 'onnx', '--purpose', 'Classification', '--model_file', 'sub', '--size', '1x1'],
      'MODEL_FILE_MISSING',
      EXIT.NOT_FOUND,
      async () => {
        await mkdir(join(dir, 'sub'));
      },
    ],
    [
      'a bad colors file',
      [...onnx, '--colors_file', 'bad-colors.txt'],
      'MODEL_COLORS_INVALID',
      EXIT.INVALID_INPUT,
      async () => {
        await writeFile(join(dir, 'bad-colors.txt'), '0,0,0\n12,300,4\n');
      },
    ],
    ['an unknown flag', [...onnx, '--frameworks', 'onnx'], 'USAGE', EXIT.USAGE],
    ['a flag without its value', [...onnx, '--model_file'], 'USAGE', EXIT.USAGE],
    [
      'a corrupt existing alwaysai.model.json',
      onnx,
      'MODEL_JSON_SYNTAX',
      EXIT.INVALID_INPUT,
      async () => {
        await writeFile(join(dir, 'alwaysai.model.json'), '{"id": "alice/x", ');
      },
    ],
  ];

  it.each(cases)('%s', async (_name, args, code, exit, setup) => {
    await setup?.();
    const before = await snapshotDir(dir);
    const run = await runInProcess(['model', 'configure', ...args, '--json'], { cwd: dir, env });
    expect(run.errorCode(), run.stdout + run.stderr).toBe(code);
    expect(run.code).toBe(exit);
    expect(run.json().error.message.length).toBeGreaterThan(20);
    expect(await snapshotDir(dir)).toEqual(before);
  });

  it('gives the same code and exit status from the real executable, on stderr without --json', async () => {
    const run = await spawnCli(
      ['model', 'configure', '--framework', 'keras', '--purpose', 'Classification', '--model_file', 'seg.onnx'],
      { cwd: dir, env },
    ).done;
    expect(run.code).toBe(EXIT.USAGE);
    expect(run.stderr).toMatch(/^error MODEL_FLAG_INVALID: --framework is "keras"; expected one of: tensorflow, /);
    expect(run.stdout).toBe('');
  });
});

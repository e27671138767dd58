import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../protocol/errors/index.js';
import { cleanEnv, runInProcess, snapshotDir, spawnCli } from '../helpers/cli.js';
import { useSeedFolder } from '../helpers/model-cli.js';

// `outpost model configure` with bad inputs: each must give its code and exit code and leave the
// folder exactly as it was.
const env = cleanEnv();
const seed = useSeedFolder();

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
        await symlink('/etc/hostname', join(seed.dir, 'escape.txt'));
      },
    ],
    [
      'a directory as model file',
      ['--framework', 'onnx', '--purpose', 'Classification', '--model_file', 'sub', '--size', '1x1'],
      'MODEL_FILE_MISSING',
      EXIT.NOT_FOUND,
      async () => {
        await mkdir(join(seed.dir, 'sub'));
      },
    ],
    [
      'a bad colors file',
      [...onnx, '--colors_file', 'bad-colors.txt'],
      'MODEL_COLORS_INVALID',
      EXIT.INVALID_INPUT,
      async () => {
        await writeFile(join(seed.dir, 'bad-colors.txt'), '0,0,0\n12,300,4\n');
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
        await writeFile(join(seed.dir, 'alwaysai.model.json'), '{"id": "alice/x", ');
      },
    ],
  ];

  it.each(cases)('%s', async (_name, args, code, exit, setup) => {
    await setup?.();
    const before = await snapshotDir(seed.dir);
    const run = await runInProcess(['model', 'configure', ...args, '--json'], { cwd: seed.dir, env });
    expect(run.errorCode(), run.stdout + run.stderr).toBe(code);
    expect(run.code).toBe(exit);
    expect(run.json().error.message.length).toBeGreaterThan(20);
    expect(await snapshotDir(seed.dir)).toEqual(before);
  });

  it('gives the same code and exit status from the real executable, on stderr without --json', async () => {
    const run = await spawnCli(
      ['model', 'configure', '--framework', 'keras', '--purpose', 'Classification', '--model_file', 'seg.onnx'],
      { cwd: seed.dir, env },
    ).done;
    expect(run.code).toBe(EXIT.USAGE);
    expect(run.stderr).toMatch(/^error MODEL_FLAG_INVALID: --framework is "keras"; expected one of: tensorflow, /);
    expect(run.stdout).toBe('');
  });
});

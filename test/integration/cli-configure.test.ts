import { describe, expect, it } from 'vitest';
import { cleanEnv, runInProcess, spawnCli } from '../helpers/cli.js';
import { useSeedFolder } from '../helpers/model-cli.js';

// `outpost model configure` on real model folders: the seed's three example commands, and the
// help. Bad inputs: cli-configure-errors.test.ts; aai's flag syntax: cli-configure-syntax.test.ts.
const env = cleanEnv();
const seed = useSeedFolder();

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
      { cwd: seed.dir, env },
    ).done;
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const m = await seed.modelJson();
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
      { cwd: seed.dir, env },
    );
    expect(run.code, run.stderr).toBe(0);
    expect((await seed.modelJson()).model_parameters).toMatchObject({
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
      { cwd: seed.dir, env },
    );
    expect(run.code, run.stdout).toBe(0);
    expect(run.json().manifest.model_parameters).toMatchObject({
      quantize_input: false,
      quantize_output: false,
      input_format: 'auto',
      output_format: 'none',
      architecture: 'yolov3',
    });
    expect((await seed.modelJson()).model_parameters.quantize_input).toBe(false);
  });

  it('prints help for the verb', async () => {
    const run = await runInProcess(['model', 'configure', '--help'], { cwd: seed.dir, env });
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

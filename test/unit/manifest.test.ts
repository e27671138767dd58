import { describe, expect, it } from 'vitest';
import type { OutpostError } from '../../protocol/errors/index.js';
import {
  PLACEHOLDER_ID,
  defaultManifest,
  manifestFiles,
  parseModelManifest,
  parseModelPath,
  toModelJson,
} from '../../protocol/manifest.js';
import { parseColorsFile } from '../../protocol/colors-file.js';
import { codeOf } from '../helpers/error-code.js';

const base = { framework_type: 'onnx', purpose: 'Classification', model_file: 'm.onnx', size: [224, 224] };

describe('defaultManifest (configure)', () => {
  it('fills the seed defaults and the placeholder id', () => {
    const m = defaultManifest({ framework_type: 'tensorflow', purpose: 'Classification', model_file: 'frozen.pb' });
    expect(m.id).toBe(PLACEHOLDER_ID);
    expect(m.public).toBe(false);
    expect(m.inference_time).toBe(0);
    expect(m.model_parameters.size).toEqual([300, 300]);
    expect(m.model_parameters.mean).toEqual([0, 0, 0]);
    expect(m.model_parameters.scalefactor).toBe(1);
    expect([m.model_parameters.crop, m.model_parameters.swaprb, m.model_parameters.softmax]).toEqual([
      false,
      false,
      false,
    ]);
  });

  it('uses 320x320 for darknet and for yolo architectures', () => {
    expect(
      defaultManifest({ framework_type: 'darknet', purpose: 'Classification', model_file: 'y.weights' })
        .model_parameters.size,
    ).toEqual([320, 320]);
    const trt = defaultManifest({
      framework_type: 'tensor-rt',
      purpose: 'ObjectDetection',
      model_file: 'n.bin',
      label_file: 'n.names',
      architecture: 'yolo',
      device: 'nano',
    });
    expect(trt.model_parameters.size).toEqual([320, 320]);
  });

  it('defaults hailo quantize flags to true and requires the formats', () => {
    const h = {
      framework_type: 'hailo',
      purpose: 'Classification',
      model_file: 'h.hef',
      architecture: 'yolov3',
      input_format: 'auto',
      output_format: 'none',
    };
    const m = defaultManifest(h);
    expect([m.model_parameters.quantize_input, m.model_parameters.quantize_output]).toEqual([true, true]);
    expect(codeOf(() => defaultManifest({ ...h, output_format: undefined }))).toBe('MODEL_FLAG_MISSING');
    expect(codeOf(() => defaultManifest({ ...h, architecture: 'yolo' }))).toBe('MODEL_FLAG_INVALID');
  });

  it('names the flag and the bad value in its errors', () => {
    try {
      defaultManifest({ ...base, framework_type: 'keras' });
      throw new Error('no throw');
    } catch (err) {
      expect((err as OutpostError).code).toBe('MODEL_FLAG_INVALID');
      expect((err as Error).message).toContain('--framework');
      expect((err as Error).message).toContain('"keras"');
    }
  });

  it.each([
    ['framework missing', { ...base, framework_type: undefined }, 'MODEL_FLAG_MISSING'],
    ['purpose unknown', { ...base, purpose: 'Detection' }, 'MODEL_FLAG_INVALID'],
    ['model_file missing', { ...base, model_file: undefined }, 'MODEL_FLAG_MISSING'],
    ['tensor-rt without device', { ...base, framework_type: 'tensor-rt', architecture: 'yolo' }, 'MODEL_FLAG_MISSING'],
    [
      'tensor-rt bad device',
      { ...base, framework_type: 'tensor-rt', architecture: 'yolo', device: 'tx2' },
      'MODEL_FLAG_INVALID',
    ],
    ['tensor-rt without architecture', { ...base, framework_type: 'tensor-rt', device: 'nano' }, 'MODEL_FLAG_MISSING'],
    ['device on onnx', { ...base, device: 'nano' }, 'MODEL_FLAG_INVALID'],
    ['detection without labels', { ...base, purpose: 'ObjectDetection' }, 'MODEL_FLAG_MISSING'],
    ['onnx without size', { ...base, size: undefined }, 'MODEL_FLAG_MISSING'],
    ['size with zero', { ...base, size: [0, 300] }, 'MODEL_FLAG_INVALID'],
    ['mean of two', { ...base, mean: [1, 2] }, 'MODEL_FLAG_INVALID'],
    ['scalefactor zero', { ...base, scalefactor: 0 }, 'MODEL_FLAG_INVALID'],
    ['h5 model', { ...base, model_file: 'model.H5' }, 'MODEL_H5_UNSUPPORTED'],
    ['absolute path', { ...base, model_file: '/etc/passwd' }, 'MODEL_PATH_OUTSIDE'],
    ['parent path', { ...base, label_file: 'a/../../x.txt' }, 'MODEL_PATH_OUTSIDE'],
  ])('refuses %s', (_name, params, code) => {
    expect(codeOf(() => defaultManifest(params as Record<string, unknown>))).toBe(code);
  });
});

describe('parseModelManifest (file)', () => {
  const good = { id: 'alice/cls', model_parameters: base };

  it('refuses the placeholder id unless allowed, and bad ids', () => {
    expect(codeOf(() => parseModelManifest({ ...good, id: PLACEHOLDER_ID }))).toBe('MODEL_PLACEHOLDER_ID');
    expect(parseModelManifest({ ...good, id: PLACEHOLDER_ID }, { allowPlaceholderId: true }).id).toBe(PLACEHOLDER_ID);
    expect(codeOf(() => parseModelManifest({ ...good, id: 'alice/../x' }))).toBe('MODEL_FIELD_INVALID');
    expect(codeOf(() => parseModelManifest({ ...good, id: 'alice' }))).toBe('MODEL_FIELD_INVALID');
  });

  it('uses MODEL_FIELD_* codes and JSON key names', () => {
    try {
      parseModelManifest({ ...good, model_parameters: { ...base, size: '300' } });
      throw new Error('no throw');
    } catch (err) {
      expect((err as OutpostError).code).toBe('MODEL_FIELD_INVALID');
      expect((err as Error).message).toContain('"size"');
    }
    expect(codeOf(() => parseModelManifest({ ...good, model_parameters: { ...base, crop: 'yes' } }))).toBe(
      'MODEL_FIELD_INVALID',
    );
    expect(codeOf(() => parseModelManifest({ ...good, public: 'no' }))).toBe('MODEL_FIELD_INVALID');
    expect(codeOf(() => parseModelManifest([]))).toBe('MODEL_FIELD_INVALID');
  });

  it('takes the decode mode auto or exact (not a seed field), refuses others, and drops an unset one', () => {
    const mode = (decode: unknown) =>
      parseModelManifest({ ...good, model_parameters: { ...base, decode } }).model_parameters.decode;
    expect(mode('auto')).toBe('auto');
    expect(mode('exact')).toBe('exact');
    expect(mode(undefined)).toBeUndefined();
    for (const unset of ['', null]) {
      const m = parseModelManifest({ ...good, model_parameters: { ...base, decode: unset } });
      expect('decode' in m.model_parameters).toBe(false);
    }
    for (const bad of ['fast', 'AUTO', 2, true]) {
      try {
        mode(bad);
        throw new Error('no throw');
      } catch (err) {
        expect((err as OutpostError).code).toBe('MODEL_FIELD_INVALID');
        expect((err as OutpostError).details).toMatchObject({ key: 'decode', value: bad });
        expect((err as Error).message).toContain('one of: auto, exact');
      }
    }
    const written = toModelJson(parseModelManifest({ ...good, model_parameters: { ...base, decode: 'exact' } }));
    expect((written.model_parameters as Record<string, unknown>).decode).toBe('exact');
  });

  it('accepts the parameters flat and writes them nested, keeping unknown keys', () => {
    const m = parseModelManifest({ id: 'alice/cls', ...base, custom: { a: 1 } });
    expect(m.model_parameters.framework_type).toBe('onnx');
    const json = toModelJson(m);
    expect(json.custom).toEqual({ a: 1 });
    expect(json.framework_type).toBeUndefined();
    const nested = parseModelManifest({ ...good, model_parameters: { ...base, vendor_hint: 'x' } });
    expect((toModelJson(nested).model_parameters as Record<string, unknown>).vendor_hint).toBe('x');
  });

  it('round-trips its written form, which carries every key of the seed table', () => {
    const m = parseModelManifest({
      ...good,
      model_parameters: { ...base, label_file: './labels.txt', output_layer_names: 'a, b' },
    });
    const json = toModelJson(m);
    for (const k of [
      'accuracy',
      'dataset',
      'id',
      'inference_time',
      'license',
      'mean_average_precision_top_1',
      'mean_average_precision_top_5',
      'public',
      'website_url',
    ]) {
      expect(json).toHaveProperty(k);
    }
    expect(Object.keys(json.model_parameters as object)).toHaveLength(19);
    expect(parseModelManifest(JSON.parse(JSON.stringify(json)))).toEqual(m);
    expect(m.model_parameters.label_file).toBe('labels.txt');
    expect(m.model_parameters.output_layer_names).toEqual(['a', 'b']);
    expect(manifestFiles(m)).toEqual(['m.onnx', 'labels.txt']);
  });
});

describe('paths and colors', () => {
  it.each(['', '/a', 'a/../b', '..', 'a//b', 'a\\b', 'C:x', 'a/./b'])('refuses path %j', (p) => {
    expect(codeOf(() => parseModelPath(p, 'model_file'))).toBe('MODEL_PATH_OUTSIDE');
  });

  it('accepts nested relative paths', () => {
    expect(parseModelPath('./sub/m.onnx', 'model_file')).toBe('sub/m.onnx');
  });

  it('reads colors and names the first bad line', () => {
    expect(parseColorsFile('0,0,0\n255, 128 ,1\n\n')).toEqual([
      [0, 0, 0],
      [255, 128, 1],
    ]);
    for (const bad of ['1,2', '1,2,256', 'a,b,c', '1.5,2,3', '1,2,3,4', '-1,2,3']) {
      expect(codeOf(() => parseColorsFile(`0,0,0\n${bad}`))).toBe('MODEL_COLORS_INVALID');
    }
    expect(codeOf(() => parseColorsFile('\n\n'))).toBe('MODEL_COLORS_INVALID');
    expect(() => parseColorsFile('0,0,0\n9,9\n')).toThrow(
      expect.objectContaining({ details: { line: 2, value: '9,9' } }),
    );
  });
});

import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenCvBackend } from '../../agent/runtime/backends/opencv.js';
import type { ModelSource } from '../../agent/runtime/backend.js';
import { buildNet, reference, sampleInput } from '../fixtures/caffe/nets.js';
import { skipForPackage } from '../helpers/requires.js';
import { agreement, params, tempRoot, writeNet } from './addon-model-dirs.js';

/** The OpenCV addon through its backend: bad files get their codes, runs are safe to overlap. */
const backend = createOpenCvBackend();
const a = await backend.availability();
const net = buildNet('classifier');
const [w, h] = net.size;

describe.skipIf(skipForPackage(a.available ? null : `OpenCV addon: ${a.reason}`))('OpenCV DNN addon', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ root, cleanup } = await tempRoot()));
  afterAll(async () => cleanup());

  const code = async (src: ModelSource) =>
    backend.load(src).then(
      () => 'loaded',
      (e: { code?: string }) => e.code,
    );

  it('refuses a missing, empty or escaping file with ADDON_MODEL_FILE_MISSING', async () => {
    const src = await writeNet(root, net, 'caffe');
    expect(await code({ ...src, params: { ...src.params, model_file: 'nope.caffemodel' } })).toBe(
      'ADDON_MODEL_FILE_MISSING',
    );
    expect(await code({ ...src, params: { ...src.params, model_file: '../x.caffemodel' } })).toBe(
      'ADDON_MODEL_FILE_MISSING',
    );
    expect(await code({ ...src, params: { ...src.params, config_file: undefined } })).toBe('ADDON_MODEL_FILE_MISSING');
    await truncate(join(src.dir, 'model.caffemodel'), 0);
    expect(await code(src)).toBe('ADDON_MODEL_FILE_MISSING');
  });

  it('refuses files that do not fit the framework with ADDON_MODEL_MISMATCH', async () => {
    const caffe = await writeNet(root, net, 'caffe');
    // Swapped model_file and config_file.
    expect(
      await code({
        ...caffe,
        params: { ...caffe.params, model_file: 'deploy.prototxt', config_file: 'model.caffemodel' },
      }),
    ).toBe('ADDON_MODEL_MISMATCH');
    // Caffe files declared as Darknet.
    expect(await code({ ...caffe, params: { ...caffe.params, framework_type: 'darknet' } })).toBe(
      'ADDON_MODEL_MISMATCH',
    );
    // A binary file named like a config.
    await writeFile(join(caffe.dir, 'binary.prototxt'), await readFile(join(caffe.dir, 'model.caffemodel')));
    expect(await code({ ...caffe, params: { ...caffe.params, config_file: 'binary.prototxt' } })).toBe(
      'ADDON_MODEL_MISMATCH',
    );
    // Darknet weights whose header is not Darknet's.
    const dn = await writeNet(root, net, 'darknet');
    await writeFile(join(dn.dir, 'model.weights'), Buffer.from('this is not a weights file at all!!'));
    expect(await code(dn)).toBe('ADDON_MODEL_MISMATCH');
  });

  it('gives ADDON_MODEL_INVALID, not a crash, for corrupt model files of every format', async () => {
    const garbage = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256));
    for (const format of ['caffe', 'tensorflow', 'onnx'] as const) {
      const src = await writeNet(root, net, format);
      await writeFile(join(src.dir, src.params.model_file), garbage);
      expect(await code(src), format).toBe('ADDON_MODEL_INVALID');
    }
    const caffe = await writeNet(root, net, 'caffe');
    await writeFile(join(caffe.dir, 'deploy.prototxt'), 'layer { this is { not prototxt');
    expect(await code(caffe)).toBe('ADDON_MODEL_INVALID');
    // A truncated caffemodel: the prototxt's layers find no (or short) weights.
    const cut = await writeNet(root, net, 'caffe');
    await truncate(join(cut.dir, 'model.caffemodel'), 40);
    expect(await code(cut)).toBe('ADDON_MODEL_INVALID');
    const enetDir = await writeNet(root, net, 'onnx');
    await writeFile(join(enetDir.dir, 'model.net'), garbage);
    expect(await code({ dir: enetDir.dir, params: params(net, 'enet', 'model.net') })).toBe('ADDON_MODEL_INVALID');
  });

  it('validates inputs, runs overlapping calls correctly, and refuses runs after dispose', async () => {
    const model = await backend.load(await writeNet(root, net, 'caffe'));
    expect(model.inputs).toEqual([{ name: 'data', dtype: 'float32', shape: [1, 3, h, w] }]);
    expect(model.outputs[0]!.shape).toEqual([1, 3]);
    const bad = await model
      .run({ data: { dtype: 'float32', shape: [1, 3, h, w + 1], data: new Float32Array(3 * h * (w + 1)) } })
      .catch((e: { code: string }) => e.code);
    expect(bad).toBe('RUNTIME_INPUT_INVALID');
    const inputs = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) => sampleInput(net, seed));
    const outs = await Promise.all(
      inputs.map((data) => model.run({ data: { dtype: 'float32', shape: [1, 3, h, w], data } })),
    );
    outs.forEach((o, i) =>
      expect(
        agreement(o[model.outputs[0]!.name]!.data as Float32Array, reference(net, inputs[i]!), 1e-4),
      ).toBeLessThanOrEqual(1e-5),
    );
    await model.dispose();
    await model.dispose();
    const after = await model
      .run({ data: { dtype: 'float32', shape: [1, 3, h, w], data: inputs[0]! } })
      .catch((e: { code: string }) => e.code);
    expect(after).toBe('RUNTIME_MODEL_UNLOADED');
  });

  it('reports an unbuilt addon as unavailable with the places it looked', async () => {
    const { loadAddon } = await import('../../agent/runtime/backends/native-loader.js');
    const missing = loadAddon('outpost_opencv_dnn', [join(root, 'no-such-dir')]);
    expect(missing.ok).toBe(false);
    expect(!missing.ok && missing.reason).toContain('no-such-dir');
    const unavailable = createOpenCvBackend({ binding: missing as never });
    expect(await unavailable.availability()).toMatchObject({ available: false });
    expect(
      await code(await writeNet(root, net, 'caffe')).then(() =>
        unavailable
          .load({ dir: root, params: params(net, 'caffe', 'x.caffemodel', 'x.prototxt') })
          .catch((e: { code: string }) => e.code),
      ),
    ).toBe('RUNTIME_BACKEND_UNAVAILABLE');
  });
});

import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, rectsImage } from '../fixtures/images.js';
import { GraphBuilder } from '../fixtures/onnx/graph.js';
import { type Harness, startAgent } from './api-harness.js';

/**
 * A detector whose outputs no post-processor reads (BlazeFace's shape: NHWC [1,128,128,3] in,
 * anchor scores [1,512,1] and regressors [1,512,16] out) installs, serves KServe v2, and /predict
 * names the layout and what to set; the model list and metadata say it serves raw tensors only.
 */
let h: Harness;
const ID = 'acme/blazeface-like';
// Each output row r is a weighted sum of the 96 input values that Reshape puts in row r.
const W16 = Array.from({ length: 96 * 16 }, (_, i) => ((i * 7) % 13) / 13 - 0.5);
const W1 = Array.from({ length: 96 }, (_, i) => ((i * 5) % 11) / 11);

beforeAll(async () => {
  h = await startAgent({ kinds: [] });
  const g = new GraphBuilder();
  const x = g.input('input', [1, 128, 128, 3]);
  const rows = g.op('Reshape', [x, g.int64s([3], [1, 512, 96])]);
  g.rename(g.op('MatMul', [rows, g.floats([96, 1], W1)]), 'scores');
  g.rename(g.op('MatMul', [rows, g.floats([96, 16], W16)]), 'boxes');
  g.output('scores', [1, 512, 1]);
  g.output('boxes', [1, 512, 16]);
  const dir = join(h.dir, 'models', 'blazeface', '1');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'face.onnx'), g.toBytes('blazeface_like'));
  await writeFile(join(dir, 'labels.txt'), 'face\n');
  await writeFile(
    join(dir, 'alwaysai.model.json'),
    JSON.stringify({
      id: ID,
      model_parameters: {
        framework_type: 'onnx',
        model_file: 'face.onnx',
        label_file: 'labels.txt',
        purpose: 'ObjectDetection',
        size: [128, 128],
        mean: [127.5, 127.5, 127.5],
        scalefactor: 1 / 127.5,
        swaprb: true,
      },
    }),
  );
  await h.runtime.activate(ID, 1, dir);
});
afterAll(async () => {
  await h?.close();
});

describe('a model whose outputs post-processing cannot read', () => {
  it('installs and answers KServe inference on raw tensors', async () => {
    const data = Float32Array.from({ length: 128 * 128 * 3 }, (_, i) => (i % 17) / 17);
    const { outputs } = await h.client.infer(ID, { input: { dtype: 'float32', shape: [1, 128, 128, 3], data } });
    expect(outputs.scores!.shape).toEqual([1, 512, 1]);
    expect(outputs.boxes!.shape).toEqual([1, 512, 16]);
    // Row 3 of the reference: the 96 inputs of that row times the weights.
    const row = data.subarray(3 * 96, 4 * 96);
    const want = row.reduce((a, v, i) => a + v * W1[i]!, 0);
    expect((outputs.scores!.data as Float32Array)[3]).toBeCloseTo(want, 3);
    const want16 = row.reduce((a, v, i) => a + v * W16[i * 16 + 5]!, 0);
    expect((outputs.boxes!.data as Float32Array)[3 * 16 + 5]).toBeCloseTo(want16, 3);
  });

  it('/predict answers RUNTIME_RAW_TENSORS_ONLY naming the layout and what to set', async () => {
    const err = await h.client.predict(ID, await encodePng(rectsImage(64, 64, [0, 0, 0], []))).catch((e) => e);
    expect(err).toMatchObject({ code: 'RUNTIME_RAW_TENSORS_ONLY', status: 422 });
    expect(err.message).toContain('scores [1,512,1]');
    expect(err.message).toContain('boxes [1,512,16]');
    expect(err.message).toMatch(/"architecture"/);
    expect(err.message).toMatch(/output_layer_names/);
    expect(err.message).toContain(`/v2/models/${ID}/infer`);
  });

  it('the model list and metadata say it serves raw tensors only, with the reason', async () => {
    const listed = (await h.client.models()).find((m) => m.id === ID) as Record<string, unknown>;
    expect(listed).toMatchObject({
      state: 'ready',
      serving: 'raw-tensors',
      notice: { code: 'RUNTIME_OUTPUT_UNEXPECTED' },
    });
    const meta = await h.client.model(ID);
    expect(meta.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [1, 128, 128, 3] }]);
    expect(meta.outpost.serving).toMatchObject({ mode: 'raw-tensors' });
  });

  it('the same model with architecture set to a layout its shapes contradict still serves raw tensors', async () => {
    const dir = join(h.dir, 'models', 'blazeface', '1');
    const { readFile } = await import('node:fs/promises');
    const json = JSON.parse(await readFile(join(dir, 'alwaysai.model.json'), 'utf8'));
    json.model_parameters.architecture = 'yolov8';
    const dir2 = join(h.dir, 'models', 'blazeface', '2');
    await mkdir(dir2, { recursive: true });
    for (const f of ['face.onnx', 'labels.txt']) await writeFile(join(dir2, f), await readFile(join(dir, f)));
    await writeFile(join(dir2, 'alwaysai.model.json'), JSON.stringify(json));
    await h.runtime.activate(ID, 2, dir2);
    const meta = await h.client.model(ID);
    expect(meta.outpost.serving).toMatchObject({ mode: 'raw-tensors', reason: { code: 'RUNTIME_OUTPUT_UNEXPECTED' } });
    expect(JSON.stringify(meta.outpost.serving)).toContain(
      'YOLOv8 output [1,512,1] has 508 class scores but the label file has 1 labels',
    );
  });
});

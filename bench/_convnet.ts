import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DynamicBatching } from '../protocol/manifest-batching.js';
import { toOnnx, type Net } from '../test/fixtures/caffe/nets.js';
import { GENERATED_CATALOG } from '../test/fixtures/model-folder.js';

/**
 * The benches' "real" network: three convolutions on a 128x128 input, about 1-2 ms per
 * inference on this kind of CPU, so that throughput benches measure an API in front of a model
 * that computes something (bench/addon-vs-onnx.ts, bench/socket-vs-inprocess.ts).
 */
export const CONV_SIZE = 128;

export function convNet(): Net {
  const r = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.2);
  const conv = (cin: number, out: number, k: number) => ({
    kind: 'conv' as const,
    out,
    k,
    pad: (k - 1) / 2,
    weights: r(out * cin * k * k),
    bias: r(out),
  });
  return {
    name: 'segmenter',
    size: [CONV_SIZE, CONV_SIZE],
    channels: 3,
    outputShape: [1, 8, CONV_SIZE, CONV_SIZE],
    layers: [conv(3, 16, 3), { kind: 'relu' }, conv(16, 16, 3), { kind: 'relu' }, conv(16, 8, 1)],
  };
}

export const CONV_PARAMS = {
  framework_type: 'onnx' as const,
  model_file: 'model.onnx',
  mean: [0, 0, 0] as [number, number, number],
  scalefactor: 1,
  size: [CONV_SIZE, CONV_SIZE] as [number, number],
  purpose: 'SemanticSegmentation' as const,
  crop: false,
  swaprb: false,
  softmax: false,
};

/**
 * A model folder (model.onnx + alwaysai.model.json) serving the conv net as `id`. By default its
 * input and output have a fixed batch of 1 (the model the benches always measured); `batch: "N"`
 * makes the first dimension dynamic, and `dynamic_batching` goes into its model_parameters.
 */
export async function writeConvNetFolder(
  dir: string,
  id: string,
  opts: { batch?: number | string; dynamic_batching?: DynamicBatching } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), toOnnx(convNet(), opts.batch ?? 1));
  await writeFile(
    join(dir, 'alwaysai.model.json'),
    JSON.stringify({
      ...GENERATED_CATALOG,
      id,
      model_parameters: opts.dynamic_batching
        ? { ...CONV_PARAMS, dynamic_batching: opts.dynamic_batching }
        : CONV_PARAMS,
    }),
  );
}

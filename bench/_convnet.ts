import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toOnnx, type Net } from '../test/fixtures/caffe/nets.js';

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

/** A model folder (model.onnx + alwaysai.model.json) serving the conv net as `id`. */
export async function writeConvNetFolder(dir: string, id: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), toOnnx(convNet()));
  await writeFile(
    join(dir, 'alwaysai.model.json'),
    JSON.stringify({
      accuracy: '',
      dataset: 'generated',
      id,
      inference_time: 0,
      license: 'Apache-2.0',
      mean_average_precision_top_1: 0,
      mean_average_precision_top_5: 0,
      public: false,
      website_url: '',
      model_parameters: CONV_PARAMS,
    }),
  );
}

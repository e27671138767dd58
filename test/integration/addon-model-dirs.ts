import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Framework, ModelParameters, Purpose } from '../../protocol/manifest-types.js';
import type { ModelSource } from '../../agent/runtime/backend.js';
import { toOnnx, type Net } from '../fixtures/caffe/nets.js';
import { toCaffe } from '../fixtures/caffe/write-caffe.js';
import { toDarknet } from '../fixtures/darknet/write-darknet.js';
import { toTensorflow } from '../fixtures/tensorflow/write-tensorflow.js';

/** Writes a conformance net in one format into a fresh model folder (helpers for the addon tests). */
export type NetFormat = Extract<Framework, 'onnx' | 'caffe' | 'darknet' | 'tensorflow'>;
export const NET_FORMATS: readonly NetFormat[] = ['onnx', 'caffe', 'darknet', 'tensorflow'];

const PURPOSE: Record<Net['name'], Purpose> = {
  classifier: 'Classification',
  segmenter: 'SemanticSegmentation',
  pose: 'PoseEstimation',
};

export function params(net: Net, framework: Framework, model_file: string, config_file?: string): ModelParameters {
  return {
    framework_type: framework,
    model_file,
    config_file,
    mean: [0, 0, 0],
    scalefactor: 1,
    size: net.size,
    purpose: PURPOSE[net.name],
    crop: false,
    swaprb: false,
    softmax: false,
  };
}

export async function writeNet(root: string, net: Net, format: NetFormat): Promise<ModelSource> {
  const dir = await mkdtemp(join(root, `${net.name}-${format}-`));
  const put = (name: string, bytes: string | Uint8Array) => writeFile(join(dir, name), bytes);
  if (format === 'onnx') {
    await put('model.onnx', toOnnx(net));
    return { dir, params: params(net, 'onnx', 'model.onnx') };
  }
  if (format === 'caffe') {
    const c = toCaffe(net);
    await put('model.caffemodel', c.caffemodel);
    await put('deploy.prototxt', c.prototxt);
    return { dir, params: params(net, 'caffe', 'model.caffemodel', 'deploy.prototxt') };
  }
  if (format === 'darknet') {
    const d = toDarknet(net);
    await put('model.weights', d.weights);
    await put('model.cfg', d.cfg);
    return { dir, params: params(net, 'darknet', 'model.weights', 'model.cfg') };
  }
  await put('frozen.pb', toTensorflow(net));
  return { dir, params: params(net, 'tensorflow', 'frozen.pb') };
}

export async function tempRoot(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'outpost-addon-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Largest |a-b| - rel*|b| over the arrays; <= abs means "agrees within abs + rel*|b|". */
export function agreement(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number): number {
  if (actual.length !== expected.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < expected.length; i++)
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) - rel * Math.abs(expected[i]!));
  return worst;
}

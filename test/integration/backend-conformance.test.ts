import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnnxBackend } from '../../agent/runtime/backends/onnx.js';
import { createOpenCvBackend } from '../../agent/runtime/backends/opencv.js';
import { createTensorRtBackend } from '../../agent/runtime/backends/tensorrt.js';
import { createHailoRtBackend } from '../../agent/runtime/backends/hailort.js';
import { createOpenVinoBackend } from '../../agent/runtime/backends/openvino.js';
import type { Backend } from '../../agent/runtime/backend.js';
import { buildNet, NET_NAMES, reference, sampleInput } from '../fixtures/caffe/nets.js';
import { buildFixture, FIXTURE_KINDS } from '../fixtures/onnx/models.js';
import { skipForHardware, skipForPackage } from '../helpers/requires.js';
import { agreement, NET_FORMATS, params, tempRoot, writeNet } from './addon-model-dirs.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * One contract suite for every inference backend: the same generated networks, written as ONNX,
 * Caffe, Darknet and TensorFlow files, must give the TypeScript reference's outputs through every
 * backend that reads that format. Tolerance: |actual - expected| <= 1e-5 + 1e-4 * |expected|
 * (float32 engines against a float64 reference; measured worst case here is about 3e-7).
 */
const ABS = 1e-5;
const REL = 1e-4;

const BACKENDS: Backend[] = [
  createOnnxBackend(),
  createOpenCvBackend(),
  createTensorRtBackend(),
  createHailoRtBackend(),
  createOpenVinoBackend(),
];
// Backends that must run on this machine (CI installs their prerequisites); the others need
// accelerator hardware and skip with the reason they report.
const REQUIRED_HERE = new Set(['onnx', 'opencv']);

let root: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ root, cleanup } = await tempRoot()));
afterAll(async () => cleanup());

for (const backend of BACKENDS) {
  const availability = await backend.availability();
  const reason = availability.available ? null : `${backend.name}: ${availability.reason}`;
  const skip = REQUIRED_HERE.has(backend.name) ? skipForPackage(reason) : skipForHardware(reason);

  describe.skipIf(skip)(`backend ${backend.name}`, () => {
    for (const format of NET_FORMATS.filter((f) => backend.frameworks.includes(f))) {
      for (const name of NET_NAMES) {
        it(`${format} ${name}: same outputs as the reference`, async () => {
          const net = buildNet(name);
          const model = await backend.load(await writeNet(root, net, format));
          try {
            const [w, h] = net.size;
            const input = sampleInput(net);
            const out = await model.run({
              [model.inputs[0]!.name]: { dtype: 'float32', shape: [1, 3, h, w], data: input },
            });
            const tensors = Object.values(out);
            expect(tensors).toHaveLength(1);
            expect(tensors[0]!.shape).toEqual(net.outputShape);
            expect(agreement(tensors[0]!.data as Float32Array, reference(net, input), REL)).toBeLessThanOrEqual(ABS);
          } finally {
            await model.dispose();
          }
        });
      }
    }

    // The runtime's own purpose fixtures (SSD [1,1,N,7], YOLO [1,N,5+C], pose heatmaps, class
    // maps, classifier scores) through every backend that reads ONNX.
    if (backend.frameworks.includes('onnx')) {
      for (const kind of FIXTURE_KINDS) {
        it(`onnx purpose fixture ${kind}: matches its TypeScript expectation`, async () => {
          const f = buildFixture(kind);
          const [w, h] = f.size;
          const dir = join(root, `${backend.name}-${kind}`);
          await import('node:fs/promises').then((fs) => fs.mkdir(dir));
          await writeFile(join(dir, 'model.onnx'), f.bytes);
          const model = await backend.load({
            dir,
            params: { ...params(buildNet('classifier'), 'onnx', 'model.onnx'), size: f.size },
          });
          try {
            // Values on both sides of the detectors' threshold, deterministic.
            const data = Float32Array.from({ length: 3 * w * h }, (_, i) => ((i * 7919) % 101) / 100);
            const out = await model.run({ [f.inputName]: { dtype: 'float32', shape: [1, 3, h, w], data } });
            const t = out[f.outputName] ?? Object.values(out)[0]!;
            expect(t.shape).toEqual(f.outputShape);
            expect(
              agreement(t.data as Float32Array, f.expected({ data, shape: [1, 3, h, w] }), REL),
            ).toBeLessThanOrEqual(ABS);
          } finally {
            await model.dispose();
          }
        });
      }
    }
  });
}

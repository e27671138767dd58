import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenCvBackend } from '../../agent/runtime/backends/opencv.js';
import { buildNet, sampleInput } from '../fixtures/caffe/nets.js';
import { skipForPackage } from '../helpers/requires.js';
import { rssGrowthMb } from '../helpers/rss-growth.js';
import { tempRoot, writeNet } from './addon-model-dirs.js';

/**
 * Leak check of the OpenCV addon: load, run and dispose the same model 1,000 times. RSS is
 * sampled after a warm-up (allocator pools, V8 code) and at the end; it must stay within a
 * measured bound. The bound is generous against noise but well below a real leak: a leaked
 * cv::dnn::Net of this model (its layers, blobs and the probe run's buffers) costs tens of KB,
 * i.e. tens of MB over 600 iterations. Measured here (node --expose-gc, 4,000 cycles): RSS grows
 * about 11 MB while malloc arenas warm up in the first ~500 cycles, then 1.2 MB over the next 3,000.
 */
const backend = createOpenCvBackend();
const a = await backend.availability();
const ITERATIONS = 1000;
const WARMUP = 400;
const BOUND_MB = 16;

describe.skipIf(skipForPackage(a.available ? null : `OpenCV addon: ${a.reason}`))('OpenCV addon leak check', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ root, cleanup } = await tempRoot()));
  afterAll(async () => cleanup());

  it(`load + run + dispose ${ITERATIONS} times keeps RSS flat`, async () => {
    const net = buildNet('segmenter');
    const source = await writeNet(root, net, 'caffe');
    const [w, h] = net.size;
    const data = sampleInput(net);
    const growthMb = await rssGrowthMb(ITERATIONS, WARMUP, async () => {
      const model = await backend.load(source);
      const out = await model.run({ data: { dtype: 'float32', shape: [1, 3, h, w], data } });
      expect(Object.values(out)[0]!.shape).toEqual(net.outputShape);
      await model.dispose();
    });
    console.info(
      `[leak] RSS growth over ${ITERATIONS - WARMUP} load/run/dispose cycles: ${growthMb.toFixed(2)} MB (bound ${BOUND_MB} MB)`,
    );
    expect(growthMb).toBeLessThan(BOUND_MB);
  }, 120_000);
});

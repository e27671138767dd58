import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOnnxBackend } from '../agent/runtime/backends/onnx.js';
import { createOpenCvBackend } from '../agent/runtime/backends/opencv.js';
import { loadAddon } from '../agent/runtime/backends/native-loader.js';
import type { OpenCvBinding } from '../agent/runtime/backends/opencv-binding.js';
import type { LoadedModel } from '../agent/runtime/backend.js';
import { toOnnx } from '../test/fixtures/caffe/nets.js';
import { CONV_PARAMS, CONV_SIZE, convNet } from './_convnet.js';
import type { BenchRow } from './run.js';
import { latencies } from './_throughput.js';

/**
 * The OpenCV DNN addon against onnxruntime-node on the same ONNX model (three convolutions on a
 * 128x128 input), and the addon's asynchronous call overhead against a plain JS async no-op.
 * Both engines run on the CPU, single process, one inference at a time; medians of timed runs
 * after a warm-up.
 */
const SIZE = CONV_SIZE;

/** p50 ms of `f` (bench/_throughput.ts's latency loop, shared by the socket benches). */
const median = async (n: number, f: () => Promise<unknown>) => (await latencies(n, f)).p50;

export async function run(): Promise<BenchRow[]> {
  const opencv = createOpenCvBackend({ target: 'cpu' });
  const avail = await opencv.availability();
  if (!avail.available) return [{ name: 'opencv addon', metric: 'ms', ours: NaN, note: `not run: ${avail.reason}` }];
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-addon-'));
  const models: LoadedModel[] = [];
  try {
    const net = convNet();
    await writeFile(join(dir, 'model.onnx'), toOnnx(net));
    const params = CONV_PARAMS;
    const cv = await opencv.load({ dir, params });
    const ort = await createOnnxBackend().load({ dir, params });
    models.push(cv, ort);
    const input = {
      data: {
        dtype: 'float32' as const,
        shape: [1, 3, SIZE, SIZE],
        data: Float32Array.from({ length: 3 * SIZE * SIZE }, (_, i) => (i % 255) / 255),
      },
    };
    const cvMs = await median(40, () => cv.run(input));
    const ortMs = await median(40, () => ort.run(input));

    const addon = loadAddon<OpenCvBinding>('outpost_opencv_dnn');
    if (!addon.ok) throw new Error(addon.reason);
    const noopMs = await median(2000, () => addon.binding.noop());
    const hopMs = await median(2000, () => addon.binding.noop(true));
    const jsMs = await median(2000, async () => null);
    return [
      {
        name: `conv net ${SIZE}x${SIZE} (3 convs)`,
        metric: 'p50 ms/inference',
        ours: cvMs,
        baseline: ortMs,
        baselineName: 'onnxruntime-node CPU',
        ratio: cvMs / ortMs,
        note: 'OpenCV DNN addon; ratio < 1: addon faster',
      },
      {
        name: 'addon async call (noop)',
        metric: 'p50 us/call',
        ours: noopMs * 1000,
        baseline: jsMs * 1000,
        baselineName: 'JS async no-op',
        ratio: noopMs / jsMs,
        note: 'goal <= 20; cheap calls run inline (CallCost in addons/core)',
      },
      {
        name: 'addon async call (noop) via the pool',
        metric: 'p50 us/call',
        ours: hopMs * 1000,
        baseline: jsMs * 1000,
        baselineName: 'JS async no-op',
        ratio: hopMs / jsMs,
        note: 'the libuv thread-pool round trip every call paid before',
      },
      {
        name: 'call overhead share',
        metric: '% of one inference',
        ours: (noopMs / cvMs) * 100,
        note: 'addon noop / conv net inference',
      },
    ];
  } finally {
    for (const m of models) await m.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseOutputs, type LoadedModel, type Tensor } from '../../agent/runtime/backend.js';
import { createOnnxBackend } from '../../agent/runtime/backends/onnx.js';
import { sessionOptionsFor } from '../../agent/runtime/backends/onnx-options.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { toOnnx, type Net } from '../fixtures/caffe/nets.js';
import { CONV_PARAMS } from '../../bench/_convnet.js';

/**
 * The ONNX backend's session placement (agent/runtime/backends/onnx-workers.ts) and its run queue
 * (run-queue.ts), against real onnxruntime: sessions in a worker thread answer exactly what
 * onnxruntime answers in-process with the same options, their lent output memory is reused only
 * after release, and a full queue refuses with RUNTIME_QUEUE_FULL.
 */
const SIZE = 32;
const net: Net = {
  name: 'segmenter',
  size: [SIZE, SIZE],
  channels: 3,
  outputShape: [1, 4, SIZE, SIZE],
  layers: [
    {
      kind: 'conv',
      out: 4,
      k: 3,
      pad: 1,
      weights: Float32Array.from({ length: 4 * 3 * 9 }, (_, i) => Math.sin(i * 1.7) * 0.3),
      bias: Float32Array.from([0.1, -0.2, 0.3, 0]),
    },
    { kind: 'relu' },
  ],
};
// The benches' conv-net parameters, at this test's smaller size.
const params = { ...CONV_PARAMS, size: [SIZE, SIZE] as [number, number] };

let dir: string;
const input = (seed: number): Record<string, Tensor> => ({
  data: {
    dtype: 'float32',
    shape: [1, 3, SIZE, SIZE],
    data: Float32Array.from({ length: 3 * SIZE * SIZE }, (_, i) => ((i * seed) % 97) / 97),
  },
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-onnx-workers-'));
  await writeFile(join(dir, 'model.onnx'), toOnnx(net));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function reference(inputs: Record<string, Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(join(dir, 'model.onnx'), sessionOptionsFor());
  try {
    const out = await s.run({ data: new ort.Tensor('float32', inputs.data!.data as Float32Array, [1, 3, SIZE, SIZE]) });
    return Float32Array.from(Object.values(out)[0]!.data as Float32Array);
  } finally {
    await s.release();
  }
}

describe('onnx sessions in worker threads', () => {
  it('answer what onnxruntime answers in-process, on the event loop and in a worker alike', async () => {
    const models: LoadedModel[] = [];
    try {
      for (const workers of [0, 1, 2])
        models.push(await createOnnxBackend({ settings: { workers, workerMinMicros: 0 } }).load({ dir, params }));
      for (const seed of [1, 5, 11]) {
        const want = await reference(input(seed));
        for (const m of models) {
          const out = await m.run(input(seed));
          const t = Object.values(out)[0]!;
          expect(t.shape).toEqual([1, 4, SIZE, SIZE]);
          expect(Array.from(t.data as Float32Array)).toEqual(Array.from(want));
          releaseOutputs(out);
        }
      }
      expect(models[1]!.inputs).toEqual(models[0]!.inputs);
      expect(models[1]!.outputs).toEqual(models[0]!.outputs);
    } finally {
      for (const m of models) await m.dispose();
    }
  });

  it('reuses lent output memory only after release, and never while the caller still reads it', async () => {
    const m = await createOnnxBackend({ settings: { workers: 1, workerMinMicros: 0 } }).load({ dir, params });
    try {
      const first = await m.run(input(3));
      const kept = Float32Array.from(Object.values(first)[0]!.data as Float32Array);
      // Not released: later runs must not write into it.
      for (const seed of [7, 13]) releaseOutputs(await m.run(input(seed)));
      expect(Array.from(Object.values(first)[0]!.data as Float32Array)).toEqual(Array.from(kept));
      releaseOutputs(first);
      releaseOutputs(first);
      const again = await m.run(input(3));
      expect(Array.from(Object.values(again)[0]!.data as Float32Array)).toEqual(Array.from(kept));
    } finally {
      await m.dispose();
    }
  });

  it('refuses a run past the queue bound with RUNTIME_QUEUE_FULL (503, retryable), and serves the rest', async () => {
    for (const workers of [0, 1]) {
      // One run computes on the event loop, two with a worker (one computing, one ready); one waits.
      const computing = workers > 0 ? 2 : 1;
      const m = await createOnnxBackend({ settings: { workers, maxQueuedPerModel: 1, workerMinMicros: 0 } }).load({
        dir,
        params,
      });
      try {
        // Started in the same tick: the bound is checked before anything is awaited.
        const runs = Array.from({ length: computing + 3 }, (_, i) => m.run(input(i + 1)));
        const settled = await Promise.allSettled(runs);
        const served = settled.filter((s) => s.status === 'fulfilled');
        const refused = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as OutpostError] : []));
        expect(served).toHaveLength(computing + 1);
        expect(refused).toHaveLength(2);
        for (const e of refused) {
          expect(e).toBeInstanceOf(OutpostError);
          expect(e.code).toBe('RUNTIME_QUEUE_FULL');
          expect(e.status).toBe(503);
          expect(e.details?.retryAfterSeconds).toBe(1);
        }
        // The queue drained: the next run is served.
        expect(Object.values(await m.run(input(2)))[0]!.shape).toEqual([1, 4, SIZE, SIZE]);
      } finally {
        await m.dispose();
      }
    }
  });

  it('refuses a short input before it crosses to the worker, and keeps serving', async () => {
    const m = await createOnnxBackend({ settings: { workers: 1, workerMinMicros: 0 } }).load({ dir, params });
    try {
      const bad = { data: { dtype: 'float32' as const, shape: [1, 3, SIZE, SIZE], data: new Float32Array(5) } };
      await expect(m.run(bad)).rejects.toMatchObject({ code: 'RUNTIME_INPUT_INVALID' });
      expect(Object.values(await m.run(input(1)))[0]!.shape).toEqual([1, 4, SIZE, SIZE]);
    } finally {
      await m.dispose();
    }
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseOutputs, type LoadedModel, type Tensor } from '../../agent/runtime/backend.js';
import { createOnnxBackend } from '../../agent/runtime/backends/onnx.js';
import { exitOnNextRun, liveOnnxWorkers } from '../../agent/runtime/backends/onnx-workers.js';
import { isRetryable, OutpostError } from '../../protocol/errors/index.js';
import { toOnnx } from '../fixtures/caffe/nets.js';
import { CONV_PARAMS, CONV_SIZE, convNet } from '../../bench/_convnet.js';

/**
 * A dead ONNX worker thread is replaced (agent/runtime/backends/onnx-workers.ts), for real, on
 * a real onnxruntime session (the benches' conv net): the worker thread ends itself with
 * process.exit when runs reach it (exitOnNextRun, so the runs are in flight at a known point),
 * or is terminated from outside through the exported list of live workers.
 */
let dir: string;
const input = (seed: number): Record<string, Tensor> => ({
  data: {
    dtype: 'float32',
    shape: [1, 3, CONV_SIZE, CONV_SIZE],
    data: Float32Array.from({ length: 3 * CONV_SIZE * CONV_SIZE }, (_, i) => ((i * seed) % 97) / 97),
  },
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-onnx-respawn-'));
  await writeFile(join(dir, 'model.onnx'), toOnnx(convNet()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(workerRestarts: number): Promise<{ model: LoadedModel; worker: () => Worker }> {
  const before = new Set(liveOnnxWorkers());
  const model = await createOnnxBackend({
    settings: { workers: 1, workerMinMicros: 0, workerRestarts, workerRestartWindowMs: 60_000 },
  }).load({ dir, params: CONV_PARAMS });
  // The worker this model runs on: the one that is new, and after a restart its replacement.
  const ours = new Set(liveOnnxWorkers().filter((w) => !before.has(w)));
  expect(ours.size).toBe(1);
  return {
    model,
    worker: () => {
      const now = liveOnnxWorkers().filter((w) => !before.has(w));
      expect(now).toHaveLength(1);
      return now[0]!;
    },
  };
}

async function outputOf(m: LoadedModel, seed: number): Promise<number[]> {
  const out = await m.run(input(seed));
  const data = Array.from(Object.values(out)[0]!.data as Float32Array);
  releaseOutputs(out);
  return data;
}

/** Stops the model's worker with runs in flight; returns how each run ended. */
async function killWithRunsInFlight(m: LoadedModel, worker: Worker): Promise<PromiseSettledResult<unknown>[]> {
  exitOnNextRun(worker);
  // Two runs: the worker takes one computing and one waiting (onnx.ts); the first ends the thread.
  return Promise.allSettled([m.run(input(2)), m.run(input(3))]);
}

describe('onnx worker respawn', () => {
  it('fails the runs in flight with RUNTIME_WORKER_EXITED, restarts the worker, and serves the same answers after', async () => {
    const { model, worker } = await load(5);
    try {
      const want = await outputOf(model, 7);
      const first = worker();
      const settled = await killWithRunsInFlight(model, first);
      for (const s of settled) {
        expect(s.status).toBe('rejected');
        const e = (s as PromiseRejectedResult).reason as OutpostError;
        expect(e).toBeInstanceOf(OutpostError);
        expect(e.code).toBe('RUNTIME_WORKER_EXITED');
        expect(e.status).toBe(503);
        expect(isRetryable(e.code)).toBe(true);
      }
      // The next run waits for the replacement (a new thread) and answers exactly as before.
      expect(await outputOf(model, 7)).toEqual(want);
      const second = worker();
      expect(second).not.toBe(first);
      expect(model.health?.()).toBeUndefined();
      // Stopped from outside with nothing in flight (worker.terminate, as an OOM kill would):
      // replaced as well, and the next run is served.
      await second.terminate();
      expect(await outputOf(model, 7)).toEqual(want);
      expect(worker()).not.toBe(second);
    } finally {
      await model.dispose();
    }
    // Disposed: the replacement thread stopped too.
    expect(liveOnnxWorkers()).toHaveLength(0);
  });

  it('after the bound of restarts, the model is unhealthy with RUNTIME_WORKER_UNHEALTHY and says what to do', async () => {
    const { model, worker } = await load(2);
    let changes = 0;
    model.onHealthChange?.(() => changes++);
    try {
      const want = await outputOf(model, 5);
      // Two replacements are allowed: each is killed in turn, and each served in between.
      for (let k = 0; k < 2; k++) {
        const settled = await killWithRunsInFlight(model, worker());
        expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as OutpostError).code : 'ok'))).toEqual([
          'RUNTIME_WORKER_EXITED',
          'RUNTIME_WORKER_EXITED',
        ]);
        expect(await outputOf(model, 5)).toEqual(want);
        expect(model.health?.()).toBeUndefined();
      }
      expect(changes).toBe(0);
      // The third death within the window: no more restarts.
      await killWithRunsInFlight(model, worker());
      await expect.poll(() => model.health?.()?.code).toBe('RUNTIME_WORKER_UNHEALTHY');
      expect(changes).toBe(1);
      expect(model.health?.()?.message).toMatch(/stopped 3 times within 60 s/);
      expect(model.health?.()?.message).toMatch(/load the model again/);
      await expect(model.run(input(5))).rejects.toMatchObject({ code: 'RUNTIME_WORKER_UNHEALTHY', status: 503 });
      // No thread is left running for it.
      expect(liveOnnxWorkers()).toHaveLength(0);
    } finally {
      await model.dispose();
    }
    // Loading the model again starts afresh on a new worker and serves.
    const again = await load(2);
    try {
      expect((await outputOf(again.model, 1)).length).toBe(8 * CONV_SIZE * CONV_SIZE);
      expect(again.model.health?.()).toBeUndefined();
    } finally {
      await again.model.dispose();
    }
  });
});

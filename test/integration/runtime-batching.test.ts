import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, describe, expect, it } from 'vitest';
import { servingRuntime } from '../../agent/api/runtime-adapter.js';
import { createApiServer } from '../../agent/api/server.js';
import { AgentClient } from '../../agent/client/index.js';
import type { Tensor } from '../../agent/runtime/backend.js';
import { sessionOptionsFor, type OnnxSettings } from '../../agent/runtime/backends/onnx-options.js';
import { exitOnNextRun, liveOnnxWorkers } from '../../agent/runtime/backends/onnx-workers.js';
import { BackendRegistry, defaultEntries } from '../../agent/runtime/registry.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import type { OutpostError } from '../../protocol/errors/index.js';
import type { DynamicBatching } from '../../protocol/manifest-batching.js';
import { silentLogger } from '../../protocol/log.js';
import { convNet } from '../../bench/_convnet.js';
import { toOnnx } from '../fixtures/caffe/nets.js';
import { GENERATED_CATALOG } from '../fixtures/model-folder.js';
import { ELEM, GraphBuilder } from '../fixtures/onnx/graph.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * Dynamic batching (agent/runtime/backends/batch-queue.ts) with real onnxruntime runs: requests
 * that wait together run as one batch, and every request's outputs are byte for byte what an
 * in-process session gives for that request alone; mixed trailing shapes never share a run; a
 * failing batch fails only the request that fails alone, with the unbatched code; the queue bound
 * is the unbatched one; a model without a dynamic batch dimension is refused at load; and the
 * batch sizes reach /metrics. No timing is asserted: which requests share a run follows from the
 * order they were queued in (all in one tick, while the first run computes).
 */
const tmp = useTempDir('outpost-batching-');
let runtime: Runtime | undefined;

afterEach(async () => {
  await runtime?.close();
  runtime = undefined;
});

async function folder(name: string, id: string, bytes: Uint8Array, params: Record<string, unknown>): Promise<string> {
  const dir = join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), bytes);
  await writeFile(
    join(dir, 'alwaysai.model.json'),
    JSON.stringify({
      ...GENERATED_CATALOG,
      id,
      model_parameters: { framework_type: 'onnx', model_file: 'model.onnx', purpose: 'Classification', ...params },
    }),
  );
  return dir;
}

/** A convolution whose input is [N, 3, H, W]: any batch and any image size (trailing shapes vary). */
function anySizeConv(): Uint8Array {
  const g = new GraphBuilder();
  const w = Float32Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => Math.sin(i * 1.7) * 0.3);
  const x = g.op('Relu', [
    g.op('Conv', [g.input('data', ['N', 3, 'H', 'W']), g.floats([4, 3, 3, 3], w), g.floats([4], [0.1, -0.2, 0.3, 0])], {
      kernel_shape: [3, 3],
      pads: [1, 1, 1, 1],
    }),
  ]);
  g.rename(x, 'output');
  g.output('output', ['N', 4, 'H', 'W']);
  return g.toBytes('any_size_conv');
}

/** Gather of rows of a 4x3 table by an int64 index [N, 1]: an index past 3 fails in onnxruntime. */
function gatherRows(): Uint8Array {
  const g = new GraphBuilder();
  const table = g.floats(
    [4, 3],
    Array.from({ length: 12 }, (_, i) => i / 10),
  );
  const x = g.op('Gather', [table, g.input('idx', ['N', 1], ELEM.INT64)], { axis: 0 });
  g.rename(x, 'rows');
  g.output('rows', ['N', 1, 3]);
  return g.toBytes('gather_rows');
}

/** A 256 -> 500 fully connected layer: onnxruntime's GEMM, whose kernels depend on the row count. */
function gemm(): Uint8Array {
  const g = new GraphBuilder();
  const w = Float32Array.from({ length: 500 * 256 }, (_, i) => Math.sin(i * 0.77) * 0.05);
  const x = g.op(
    'Gemm',
    [g.input('data', ['N', 256]), g.floats([500, 256], w), g.floats([500], new Float32Array(500))],
    {
      transB: 1,
    },
  );
  g.rename(x, 'out');
  g.output('out', ['N', 500]);
  return g.toBytes('gemm');
}

function start(onnx: Partial<OnnxSettings>): Runtime {
  runtime = new Runtime({
    log: silentLogger,
    registry: new BackendRegistry({ log: silentLogger, entries: defaultEntries({ onnx }) }),
  });
  return runtime;
}

const image = (n: number, h: number, w: number, seed: number): Tensor => ({
  dtype: 'float32',
  shape: [n, 3, h, w],
  data: Float32Array.from({ length: n * 3 * h * w }, (_, i) => Math.sin(i * 0.37 + seed * 11.3)),
});

/** What an in-process session with the agent's options gives for each input alone. */
async function alone(file: string, onnx: Partial<OnnxSettings>, inputs: Record<string, Tensor>[]) {
  const session = await ort.InferenceSession.create(file, sessionOptionsFor(onnx));
  try {
    const out: Record<string, ort.Tensor>[] = [];
    for (const feeds of inputs)
      out.push(
        await session.run(
          Object.fromEntries(
            Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data as never, t.shape)]),
          ),
        ),
      );
    return out;
  } finally {
    await session.release();
  }
}

/** The batch size of every run counted since `before`, ascending. */
function runSizes(runs: ReadonlyMap<number, number>, before: ReadonlyMap<number, number>): number[] {
  return [...runs]
    .flatMap(([size, n]) => Array.from({ length: n - (before.get(size) ?? 0) }, () => size))
    .sort((a, b) => a - b);
}

const bytesOf = (d: ArrayBufferView) => Buffer.from(d.buffer, d.byteOffset, d.byteLength);

const POLICY: DynamicBatching = { max_batch_size: 8, max_queue_delay_microseconds: 0 };

// Both placements: in a worker thread (two runs in flight) and on the event loop (one).
describe.each([
  { where: 'worker thread', onnx: { workers: 1, workerMinMicros: 0 }, parallel: 2 },
  { where: 'event loop', onnx: { workers: 0 }, parallel: 1 },
])('dynamic batching on the $where', ({ onnx, parallel }) => {
  it('runs what waited as batches, each output byte-identical to the request run alone', async () => {
    const rt = start(onnx);
    const dir = await folder('conv', 'acme/conv', toOnnx(convNet(), 'N'), {
      size: [128, 128],
      purpose: 'SemanticSegmentation',
      dynamic_batching: POLICY,
    });
    await rt.activate('acme/conv', 1, dir);
    // 12 requests of 1 row and one of 2 rows, all queued in this tick.
    const inputs = [...Array.from({ length: 12 }, (_, i) => image(1, 128, 128, i)), image(2, 128, 128, 99)].map(
      (t) => ({ data: t }),
    );
    // The activation's smoke test is a run too (size 1): counted before the requests start.
    const before = new Map(rt.get('acme/conv')!.batches!.runs);
    const got = await Promise.all(inputs.map((i) => rt.infer('acme/conv', i)));
    const want = await alone(join(dir, 'model.onnx'), onnx, inputs);
    for (const [k, g] of got.entries()) {
      expect(g.outputs.output!.shape).toEqual([...want[k]!.output!.dims]);
      expect(bytesOf(g.outputs.output!.data).equals(bytesOf(want[k]!.output!.data as Float32Array))).toBe(true);
    }
    // The first `parallel` requests found the session idle and ran alone; the rest (12 rows of
    // 1 and one of 2: 12 rows left + 2) waited and ran as batches of at most 8 rows.
    const sizes = runSizes(rt.get('acme/conv')!.batches!.runs, before);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(14);
    expect(sizes.filter((s) => s === 1).length).toBe(parallel);
    expect(Math.max(...sizes)).toBe(8);
  });

  it('batches /predict too: the same results as the unbatched model of the same weights', async () => {
    const rt = start(onnx);
    const params = { size: [128, 128], purpose: 'SemanticSegmentation' };
    const plain = await folder('seg-1', 'acme/seg-plain', toOnnx(convNet(), 1), params);
    const batched = await folder('seg-n', 'acme/seg', toOnnx(convNet(), 'N'), { ...params, dynamic_batching: POLICY });
    await rt.activate('acme/seg-plain', 1, plain);
    await rt.activate('acme/seg', 1, batched);
    const frames = Array.from({ length: 6 }, (_, k) => ({
      width: 160,
      height: 120,
      channels: 3 as const,
      format: 'bgr' as const,
      data: Uint8Array.from({ length: 160 * 120 * 3 }, (_, i) => (i * (k + 3)) % 251),
    }));
    const before = new Map(rt.get('acme/seg')!.batches!.runs);
    const got = await Promise.all(frames.map((f) => rt.predict('acme/seg', f)));
    const want = await Promise.all(frames.map((f) => rt.predict('acme/seg-plain', f)));
    for (const [k, g] of got.entries()) {
      const { duration: _d, model: _m, ...result } = g;
      const { duration: _d2, model: _m2, ...expected } = want[k]!;
      expect((result as { class_map?: number[][] }).class_map).toHaveLength(120);
      expect(result).toEqual(expected);
    }
    expect(Math.max(...runSizes(rt.get('acme/seg')!.batches!.runs, before))).toBeGreaterThan(1);
  });

  it('gives a Gemm (fully connected) model the same bytes batched as alone', async () => {
    const rt = start(onnx);
    const dir = await folder('gemm', 'acme/gemm', gemm(), { size: [1, 1], dynamic_batching: POLICY });
    await rt.activate('acme/gemm', 1, dir);
    const inputs = Array.from({ length: 9 }, (_, k) => ({
      data: {
        dtype: 'float32' as const,
        shape: [1, 256],
        data: Float32Array.from({ length: 256 }, (_, i) => Math.cos(i * 0.31 + k)),
      },
    }));
    const before = new Map(rt.get('acme/gemm')!.batches!.runs);
    const got = await Promise.all(inputs.map((i) => rt.infer('acme/gemm', i)));
    const want = await alone(join(dir, 'model.onnx'), onnx, inputs);
    for (const [k, g] of got.entries())
      expect(bytesOf(g.outputs.out!.data).equals(bytesOf(want[k]!.out!.data as Float32Array))).toBe(true);
    expect(Math.max(...runSizes(rt.get('acme/gemm')!.batches!.runs, before))).toBeGreaterThan(1);
  });

  it('never puts different trailing shapes into one run', async () => {
    const rt = start(onnx);
    const dir = await folder('any', 'acme/any', anySizeConv(), {
      size: [16, 16],
      dynamic_batching: { max_batch_size: 16, max_queue_delay_microseconds: 0 },
    });
    await rt.activate('acme/any', 1, dir);
    const before = new Map(rt.get('acme/any')!.batches!.runs);
    const inputs = Array.from({ length: 10 }, (_, i) => ({ data: image(1, i % 2 ? 8 : 16, 16, i) }));
    const got = await Promise.all(inputs.map((i) => rt.infer('acme/any', i)));
    const want = await alone(join(dir, 'model.onnx'), onnx, inputs);
    for (const [k, g] of got.entries())
      expect(bytesOf(g.outputs.output!.data).equals(bytesOf(want[k]!.output!.data as Float32Array))).toBe(true);
    // The first `parallel` ran alone; the 8x16 and 16x16 requests waiting behind them ran apart.
    const sizes = runSizes(rt.get('acme/any')!.batches!.runs, before);
    expect(sizes.length).toBe(parallel + 2);
    expect(Math.max(...sizes)).toBe(parallel === 2 ? 4 : 5);
  });

  it('fails only the request that fails alone, with the unbatched code', async () => {
    const rt = start(onnx);
    const dir = await folder('gather', 'acme/gather', gatherRows(), { size: [1, 1], dynamic_batching: POLICY });
    await rt.activate('acme/gather', 1, dir);
    const idx = (v: number): Record<string, Tensor> => ({
      idx: { dtype: 'int64', shape: [1, 1], data: BigInt64Array.from([BigInt(v)]) },
    });
    const alone = await rt.infer('acme/gather', idx(7)).catch((e: OutpostError) => e.code);
    expect(alone).toBe('RUNTIME_INFERENCE_FAILED');
    const values = [0, 1, 2, 3, 1, 7, 2, 0];
    const got = await Promise.allSettled(values.map((v) => rt.infer('acme/gather', idx(v))));
    for (const [k, r] of got.entries()) {
      if (values[k] === 7) {
        expect(r.status).toBe('rejected');
        expect(((r as PromiseRejectedResult).reason as OutpostError).code).toBe('RUNTIME_INFERENCE_FAILED');
      } else {
        expect(r.status).toBe('fulfilled');
        const out = (r as PromiseFulfilledResult<{ outputs: Record<string, Tensor> }>).value.outputs.rows!;
        expect(out.shape).toEqual([1, 1, 3]);
        expect([...out.data]).toEqual([0, 1, 2].map((j) => Math.fround((values[k]! * 3 + j) / 10)));
      }
    }
  });

  it('with max_queue_delay_microseconds, waits for a full batch while a run is in flight, never while idle', async () => {
    const rt = start(onnx);
    const dir = await folder('conv-d', 'acme/conv', toOnnx(convNet(), 'N'), {
      size: [128, 128],
      purpose: 'SemanticSegmentation',
      // A second: far longer than this test, so only a full batch can end the wait.
      dynamic_batching: { max_batch_size: 8, max_queue_delay_microseconds: 1_000_000 },
    });
    await rt.activate('acme/conv', 1, dir);
    const before = new Map(rt.get('acme/conv')!.batches!.runs);
    // The first finds the session idle and runs at once; the free second slot (in a worker)
    // waits for company instead of taking the next request alone, until 8 rows wait.
    await Promise.all(Array.from({ length: 9 }, (_, i) => rt.infer('acme/conv', { data: image(1, 128, 128, i) })));
    expect(runSizes(rt.get('acme/conv')!.batches!.runs, before)).toEqual([1, 8]);
  });

  it('refuses past onnx.maxQueuedPerModel with RUNTIME_QUEUE_FULL, as unbatched', async () => {
    const rt = start({ ...onnx, maxQueuedPerModel: 3 });
    const dir = await folder('conv-q', 'acme/conv', toOnnx(convNet(), 'N'), {
      size: [128, 128],
      purpose: 'SemanticSegmentation',
      dynamic_batching: POLICY,
    });
    await rt.activate('acme/conv', 1, dir);
    const got = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => rt.infer('acme/conv', { data: image(1, 128, 128, i) })),
    );
    const refused = got.filter((r) => r.status === 'rejected');
    expect(refused.length).toBe(10 - parallel - 3);
    for (const r of refused)
      expect(((r as PromiseRejectedResult).reason as OutpostError).code).toBe('RUNTIME_QUEUE_FULL');
  });
});

describe('dynamic batching when the worker thread dies', () => {
  it('fails every request of the batch in flight with RUNTIME_WORKER_EXITED, then serves again', async () => {
    const known = new Set(liveOnnxWorkers());
    const rt = start({ workers: 1, workerMinMicros: 0 });
    const dir = await folder('conv-x', 'acme/conv', toOnnx(convNet(), 'N'), {
      size: [128, 128],
      purpose: 'SemanticSegmentation',
      dynamic_batching: { max_batch_size: 8, max_queue_delay_microseconds: 1_000_000 },
    });
    await rt.activate('acme/conv', 1, dir);
    const worker = liveOnnxWorkers().find((w) => !known.has(w))!;
    // The first request is handed to the worker now; the thread ends itself at the next run,
    // which is the batch of the 8 that follow (the delay holds the free slot for a full batch).
    const first = rt.infer('acme/conv', { data: image(1, 128, 128, 0) }).catch(() => undefined);
    exitOnNextRun(worker);
    const batch = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => rt.infer('acme/conv', { data: image(1, 128, 128, i + 1) })),
    );
    await first;
    for (const r of batch) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as OutpostError).code).toBe('RUNTIME_WORKER_EXITED');
    }
    const input = { data: image(1, 128, 128, 5) };
    const again = await rt.infer('acme/conv', input);
    const [want] = await alone(join(dir, 'model.onnx'), { workers: 1 }, [input]);
    expect(bytesOf(again.outputs.output!.data).equals(bytesOf(want!.output!.data as Float32Array))).toBe(true);
  });
});

describe('dynamic batching at load and on /metrics', () => {
  it('refuses dynamic_batching on a model whose batch dimension is fixed, keeping the active version', async () => {
    const rt = start({});
    const good = await folder('v1', 'acme/conv', toOnnx(convNet(), 'N'), { size: [128, 128] });
    await rt.activate('acme/conv', 1, good);
    const fixed = await folder('v2', 'acme/conv', toOnnx(convNet(), 1), { size: [128, 128], dynamic_batching: POLICY });
    const err = (await rt.activate('acme/conv', 2, fixed).catch((e: unknown) => e)) as OutpostError;
    expect(err.code).toBe('RUNTIME_MODEL_LOAD_FAILED');
    expect(err.message).toMatch(/dynamic_batching is set, but input "data" has shape \[1,3,128,128\]/);
    expect(rt.get('acme/conv')!.version).toBe(1);
    expect(rt.get('acme/conv')!.batches).toBeUndefined();
  });

  it("shows each batching model's batch sizes as a histogram on /metrics", async () => {
    const rt = start({ workers: 1, workerMinMicros: 0 });
    const dir = await folder('conv-m', 'acme/conv', toOnnx(convNet(), 'N'), {
      size: [128, 128],
      purpose: 'SemanticSegmentation',
      dynamic_batching: POLICY,
    });
    await rt.activate('acme/conv', 1, dir);
    const serving = servingRuntime(rt);
    const server = createApiServer({ runtime: serving, log: silentLogger, limits: { maxConcurrentPerModel: 64 } });
    const socket = join(tmp.dir, 'agent.sock');
    await server.listen(socket);
    const client = new AgentClient({ socket });
    try {
      // Sequential requests each find the session idle: they run alone (size 1), never waiting;
      // then 6 at once: 2 find a free run slot, 4 wait and run as one batch. The smoke test of
      // the activation was one run of size 1 too.
      for (let i = 0; i < 3; i++) await client.infer('acme/conv', { data: image(1, 128, 128, i) }, { binary: true });
      await Promise.all(Array.from({ length: 6 }, (_, i) => rt.infer('acme/conv', { data: image(1, 128, 128, i) })));
      const text = await client.metrics();
      expect(text).toContain('# TYPE outpost_model_batch_size histogram');
      expect(text).toContain('outpost_model_batch_size_bucket{model="acme/conv",le="1"} 6');
      expect(text).toContain('outpost_model_batch_size_bucket{model="acme/conv",le="2"} 6');
      expect(text).toContain('outpost_model_batch_size_bucket{model="acme/conv",le="4"} 7');
      expect(text).toContain('outpost_model_batch_size_count{model="acme/conv"} 7');
      expect(text).toContain('outpost_model_batch_size_sum{model="acme/conv"} 10');
    } finally {
      client.close();
      await server.close(500);
      serving.dispose();
    }
  });
});

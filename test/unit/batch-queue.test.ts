import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../agent/runtime/backend.js';
import { BatchQueue, type Feed, type Ran } from '../../agent/runtime/backends/batch-queue.js';
import type { DynamicBatching } from '../../protocol/manifest-batching.js';
import { silentLogger } from '../../protocol/log.js';

/**
 * The batch queue's scheduling with an engine the test drives by hand: each run waits until the
 * test lets it finish, so which requests share a run follows from the order of events alone. The
 * engine doubles each input row; the real onnxruntime runs are in
 * test/integration/runtime-batching.test.ts.
 */
function engine(opts: { splits?: boolean } = {}) {
  const runs: { rows: number; finish: () => void }[] = [];
  const exec = (feeds: Record<string, Feed>): Promise<Ran> => {
    const f = feeds.x!;
    const rows = f.shape[0]!;
    const data = new Float32Array(f.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of f.parts) for (const v of p as Float32Array) data[at++] = v * 2;
    return new Promise((resolve) => {
      runs.push({
        rows,
        finish: () =>
          resolve({
            outputs: {
              y:
                opts.splits === false
                  ? { dtype: 'float32', shape: [1, data.length], data }
                  : { dtype: 'float32', shape: [rows, data.length / rows], data },
            },
          }),
      });
    });
  };
  return { runs, exec };
}

const request = (rows: number, v: number): Record<string, Tensor> => ({
  x: { dtype: 'float32', shape: [rows, 2], data: Float32Array.from({ length: rows * 2 }, () => v) },
});

const tick = () => new Promise((r) => setImmediate(r));

function queue(policy: DynamicBatching, e: ReturnType<typeof engine>, parallel = 1): BatchQueue {
  return new BatchQueue({ what: 'model t', parallel, maxQueued: 64, policy, exec: e.exec, log: silentLogger });
}

describe('BatchQueue', () => {
  it('cuts a batch to the largest preferred size that fits what waits', async () => {
    const e = engine();
    const q = queue({ max_batch_size: 8, max_queue_delay_microseconds: 0, preferred_batch_size: [2, 4] }, e);
    const all = Array.from({ length: 8 }, (_, i) => q.run(request(1, i)));
    // The first ran alone (the queue was idle); 7 wait: then 4, 2 and 1 (no preferred size fits 1).
    for (let k = 0; k < 4; k++) {
      await tick();
      e.runs[k]!.finish();
    }
    const got = await Promise.all(all);
    expect(e.runs.map((r) => r.rows)).toEqual([1, 4, 2, 1]);
    got.forEach((r, i) => expect([...r.outputs.y!.data]).toEqual([i * 2, i * 2]));
    expect([...q.stats.runs]).toEqual([
      [1, 2],
      [4, 1],
      [2, 1],
    ]);
  });

  it('runs a request with more rows than max_batch_size alone, and keeps the order of the rest', async () => {
    const e = engine();
    const q = queue({ max_batch_size: 4, max_queue_delay_microseconds: 0 }, e);
    const all = [q.run(request(1, 0)), q.run(request(6, 1)), q.run(request(2, 2)), q.run(request(1, 3))];
    for (let k = 0; k < 3; k++) {
      await tick();
      e.runs[k]!.finish();
    }
    const got = await Promise.all(all);
    expect(e.runs.map((r) => r.rows)).toEqual([1, 6, 3]);
    expect(got.map((r) => r.outputs.y!.shape)).toEqual([
      [1, 2],
      [6, 2],
      [2, 2],
      [1, 2],
    ]);
    expect([...got[2]!.outputs.y!.data]).toEqual([4, 4, 4, 4]);
    expect([...got[3]!.outputs.y!.data]).toEqual([6, 6]);
  });

  it('returns the batch memory once every request of it released its rows', async () => {
    let released = 0;
    const e = engine();
    const exec = async (feeds: Record<string, Feed>) => ({ ...(await e.exec(feeds)), release: () => released++ });
    const q = new BatchQueue({
      what: 'model t',
      parallel: 1,
      maxQueued: 64,
      policy: { max_batch_size: 4, max_queue_delay_microseconds: 0 },
      exec,
      log: silentLogger,
    });
    const all = [0, 1, 2].map((v) => q.run(request(1, v)));
    await tick();
    e.runs[0]!.finish();
    await tick();
    e.runs[1]!.finish();
    const [a, b, c] = await Promise.all(all);
    a!.release!();
    expect(released).toBe(1);
    b!.release!();
    b!.release!();
    expect(released).toBe(1);
    c!.release!();
    expect(released).toBe(2);
  });

  it('stops batching a model whose outputs do not split by the batch, answering each request alone', async () => {
    const e = engine({ splits: false });
    const q = queue({ max_batch_size: 8, max_queue_delay_microseconds: 0 }, e);
    const all = [0, 1, 2, 3].map((v) => q.run(request(1, v)));
    await tick();
    e.runs[0]!.finish(); // alone: its output [1, 2] is its own
    await tick();
    e.runs[1]!.finish(); // the batch of 3: one output row for 3 requests, so it is run again apart
    for (let k = 2; k < 5; k++) {
      await tick();
      e.runs[k]!.finish();
    }
    const got = await Promise.all(all);
    expect(e.runs.map((r) => r.rows)).toEqual([1, 3, 1, 1, 1]);
    got.forEach((r, i) => expect([...r.outputs.y!.data]).toEqual([i * 2, i * 2]));
    // From now on every request runs alone.
    const later = [q.run(request(1, 7)), q.run(request(1, 8))];
    for (let k = 5; k < 7; k++) {
      await tick();
      e.runs[k]!.finish();
    }
    await Promise.all(later);
    expect(e.runs.slice(5).map((r) => r.rows)).toEqual([1, 1]);
  });
});

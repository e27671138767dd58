import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedModel } from '../../agent/runtime/backend.js';
import { createOnnxBackend } from '../../agent/runtime/backends/onnx.js';
import {
  filePlacementMemo,
  MAX_ENTRIES,
  parsePlacementFile,
  type PlacementMemo,
} from '../../agent/runtime/backends/onnx-placement.js';
import { createLogger } from '../../protocol/log.js';
import { CONV_PARAMS } from '../../bench/_convnet.js';
import { buildNet, toOnnx } from '../fixtures/caffe/nets.js';

/**
 * Where the ONNX backend places a model from what earlier loads measured
 * (agent/runtime/backends/onnx-placement.ts), against real onnxruntime and a real memo file: a
 * load of a models-folder version records its trial time; a later load whose memo entry settles
 * the placement (under the threshold) runs no trial; an entry at or over the threshold, as a busy
 * moment leaves it, never pins a light model in a worker: it is measured again and replaced by the
 * lesser time; a folder outside the models folder never touches the memo.
 */
// A small segmenter (8x6): it computes in microseconds.
const net = buildNet('segmenter');
const params = { ...CONV_PARAMS, size: net.size };
// Far over what this one 1x1 convolution costs, even measured on a busy machine.
const THRESHOLD = 200_000;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-onnx-placement-'));
  await writeFile(join(dir, 'model.onnx'), toOnnx(net));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Loads the model once with `memo`, returning the backend's 'placed' log line. */
async function place(memo: PlacementMemo | undefined, version: string | undefined) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    }),
  });
  const backend = createOnnxBackend({
    log,
    placement: memo,
    settings: { workers: 1, workerMinMicros: THRESHOLD },
  });
  let model: LoadedModel | undefined;
  try {
    model = await backend.load({ dir, params, ...(version ? { version } : {}) });
  } finally {
    await model?.dispose();
  }
  const placed = lines.find((l) => l.msg === 'placed');
  expect(placed).toBeDefined();
  return placed as { trialMicros: number; inWorker: boolean; measured: boolean };
}

async function entries(file: string): Promise<Record<string, number>> {
  return (JSON.parse(await readFile(file, 'utf8')) as { micros: Record<string, number> }).micros;
}

describe('onnx placement memo', () => {
  it('records a trial, then places from it without running one', async () => {
    const file = join(dir, 'first.json');
    const memo = filePlacementMemo(file);
    const first = await place(memo, 'acme/tiny@1');
    expect(first).toMatchObject({ measured: true, inWorker: false });
    await memo.flush();
    const recorded = await entries(file);
    const [key] = Object.keys(recorded);
    expect(Object.keys(recorded)).toHaveLength(1);
    expect(key).toMatch(/^acme\/tiny@1\/model\.onnx:\d+:/);
    expect(recorded[key]).toBeGreaterThan(0);

    // A restart: a new memo on the same file. An entry under the threshold settles it.
    const settled = 123;
    await writeFile(file, JSON.stringify({ v: 1, micros: { [key]: settled } }));
    const again = filePlacementMemo(file);
    const second = await place(again, 'acme/tiny@1');
    expect(second).toMatchObject({ measured: false, inWorker: false, trialMicros: settled });
    await again.flush();
    expect(await entries(file)).toEqual({ [key]: settled });
  });

  it('measures again an entry at or over the threshold, and keeps the lesser time', async () => {
    const file = join(dir, 'busy.json');
    const memo = filePlacementMemo(file);
    await place(memo, 'acme/tiny@2');
    await memo.flush();
    const [key] = Object.keys(await entries(file));
    // What one busy moment of the device could have left: a time over the threshold.
    await writeFile(file, JSON.stringify({ v: 1, micros: { [key]: THRESHOLD * 3 } }));
    const busy = filePlacementMemo(file);
    const placed = await place(busy, 'acme/tiny@2');
    expect(placed).toMatchObject({ measured: true, inWorker: false });
    expect(placed.trialMicros).toBeLessThan(THRESHOLD);
    await busy.flush();
    // The 'placed' log line rounds to whole microseconds; the memo keeps the measured value.
    expect(Math.round((await entries(file))[key])).toBe(placed.trialMicros);
  });

  it('leaves the memo alone for a folder outside the models folder', async () => {
    const file = join(dir, 'none.json');
    const memo = filePlacementMemo(file);
    expect(await place(memo, undefined)).toMatchObject({ measured: true });
    await memo.flush();
    await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('treats a malformed or oversized file as empty, and keeps at most MAX_ENTRIES', async () => {
    expect(parsePlacementFile(null).size).toBe(0);
    expect(parsePlacementFile({ v: 2, micros: { a: 1 } }).size).toBe(0);
    expect([...parsePlacementFile({ v: 1, micros: { a: 1, b: -1, c: 'x', d: Number.NaN } })]).toEqual([['a', 1]]);
    const many = Object.fromEntries(Array.from({ length: MAX_ENTRIES + 10 }, (_, i) => [`k${i}`, i + 1]));
    expect(parsePlacementFile({ v: 1, micros: many }).size).toBe(MAX_ENTRIES);

    const file = join(dir, 'garbage.json');
    await writeFile(file, '{"v":1,"micros":');
    const memo = filePlacementMemo(file);
    expect(await memo.lookup('k')).toBeUndefined();
    memo.record('k', 5);
    await memo.flush();
    expect(await entries(file)).toEqual({ k: 5 });
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../agent/runtime/backend.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import { BackendRegistry, lazyModuleEntry } from '../../agent/runtime/registry.js';
import { encodePng, rectsImage } from '../fixtures/images.js';
import { writeModelFolder } from '../fixtures/model-folder.js';

/** Bad inputs get their catalog code, and the runtime keeps serving good requests meanwhile. */
let root: string;
const rt = new Runtime();
const id = 'test/errors';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-rterr-'));
  await writeModelFolder(join(root, 'm'), 'classifier', { id });
  await rt.activate(id, 1, join(root, 'm'));
});
afterAll(async () => {
  await rt.close();
  await rm(root, { recursive: true, force: true });
});

const f32 = (shape: number[]): Tensor => ({
  dtype: 'float32',
  shape,
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
});

describe('runtime: bad inputs answer with codes', () => {
  const tensorCases: [string, Record<string, Tensor>][] = [
    ['wrong shape', { data: f32([1, 3, 16, 16]) }],
    ['wrong rank', { data: f32([3, 32, 32]) }],
    ['wrong dtype', { data: { dtype: 'int32', shape: [1, 3, 32, 32], data: new Int32Array(3072) } }],
    [
      'data of another type than dtype',
      { data: { dtype: 'float32', shape: [1, 3, 32, 32], data: new Uint8Array(3072) as never } },
    ],
    ['short data', { data: { dtype: 'float32', shape: [1, 3, 32, 32], data: new Float32Array(100) } }],
    ['negative dimension', { data: { dtype: 'float32', shape: [1, 3, -32, 32], data: new Float32Array(3072) } }],
    ['unknown input name', { data: f32([1, 3, 32, 32]), extra: f32([1]) }],
    ['missing input', {}],
  ];
  for (const [name, inputs] of tensorCases) {
    it(`infer: ${name} -> RUNTIME_INPUT_INVALID`, async () => {
      await expect(rt.infer(id, inputs)).rejects.toMatchObject({ code: 'RUNTIME_INPUT_INVALID' });
    });
  }

  it('images: non-image, truncated, empty, bad frames -> RUNTIME_IMAGE_INVALID, while good requests succeed', async () => {
    const png = await encodePng(rectsImage(20, 20, [200, 0, 0], []));
    const bad: unknown[] = [
      Buffer.from('hello, not an image'),
      png.subarray(0, 40),
      new Uint8Array(0),
      Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0, 1, 2, 3]),
      { width: 10, height: 10, channels: 3, format: 'rgb', data: new Uint8Array(10) },
      { width: 0, height: 10, channels: 3, format: 'rgb', data: new Uint8Array(0) },
      { width: 2, height: 2, channels: 2, format: 'rgb', data: new Uint8Array(8) },
      { width: 2, height: 2, channels: 3, format: 'yuv', data: new Uint8Array(12) },
      { width: 2, height: 2, channels: 3, format: 'rgb', data: [1, 2, 3] },
      null,
    ];
    const good = Array.from({ length: 8 }, () => rt.predict(id, png));
    const results = await Promise.allSettled(bad.map((b) => rt.predict(id, b as Uint8Array)));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'RUNTIME_IMAGE_INVALID' });
    }
    for (const g of await Promise.all(good))
      expect(g).toMatchObject({ purpose: 'Classification', predictions: [{ label: 'red' }] });
  });

  it('unknown model or version -> RUNTIME_MODEL_NOT_LOADED', async () => {
    await expect(rt.predict('test/nope', new Uint8Array(1))).rejects.toMatchObject({
      code: 'RUNTIME_MODEL_NOT_LOADED',
    });
    await expect(rt.infer(id, { data: f32([1, 3, 32, 32]) }, { version: 7 })).rejects.toMatchObject({
      code: 'RUNTIME_MODEL_NOT_LOADED',
    });
  });
});

describe('backend registry', () => {
  it('lists every backend with availability and a reason, and selects onnx for onnx', async () => {
    const reg = new BackendRegistry();
    const caps = await reg.capabilities();
    expect(caps.map((c) => c.name)).toEqual(['onnx', 'opencv', 'tensorrt', 'hailort', 'openvino']);
    const onnx = caps.find((c) => c.name === 'onnx')!;
    expect(onnx.available).toBe(true);
    expect((onnx.details as { providers: string[] }).providers).toContain('cpu');
    for (const c of caps.filter((c) => !c.available)) expect(c.reason).toMatch(/\w/);
    expect((await reg.select('onnx')).name).toMatch(/^(onnx|opencv)$/);
  });

  it('a backend without its SDK or module is unavailable with a reason, never a crash', async () => {
    const reg = new BackendRegistry({
      entries: [
        lazyModuleEntry('ghost', ['hailo'], './backends/does-not-exist.js'),
        {
          name: 'broken',
          frameworks: ['myriad'],
          create: async () => {
            throw new Error('libfoo.so: cannot open shared object file');
          },
        },
      ],
    });
    const caps = await reg.capabilities();
    expect(caps).toEqual([
      expect.objectContaining({
        name: 'ghost',
        available: false,
        reason: expect.stringContaining('not part of this build'),
      }),
      expect.objectContaining({ name: 'broken', available: false, reason: expect.stringContaining('libfoo.so') }),
    ]);
    await expect(reg.select('hailo')).rejects.toMatchObject({
      code: 'RUNTIME_BACKEND_UNAVAILABLE',
      message: expect.stringContaining('ghost'),
    });
    await expect(reg.select('myriad')).rejects.toMatchObject({ code: 'RUNTIME_BACKEND_UNAVAILABLE' });
    await expect(reg.get('nope')).rejects.toMatchObject({ code: 'RUNTIME_BACKEND_UNKNOWN' });
  });
});

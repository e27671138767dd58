import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../agent/runtime/backends/native-loader.js';
import { join } from 'node:path';
import { skipForPackage } from '../helpers/requires.js';
import { buildNet } from '../fixtures/caffe/nets.js';
import { tempRoot, writeNet } from './addon-model-dirs.js';

/**
 * The shared Node-API wrapper (addons/core/model_wrap.h) turns misuse from JavaScript into coded
 * errors instead of crashing the process: a bad load spec, `new` on the model class, and calls on
 * a disposed model. Exercised on the OpenCV addon, the one that is built here.
 */
type Binding = {
  load(spec: unknown): Promise<{
    dispose(): void;
    info(): unknown;
    forward(i: unknown, names?: string[]): Promise<{ name: string; data: Float32Array }[]>;
  }>;
  noop(viaPool?: boolean): Promise<void>;
  abi: number;
};
const loaded = loadAddon<Binding>('outpost_opencv_dnn');

describe.skipIf(skipForPackage(loaded.ok ? null : `OpenCV addon: ${loaded.reason}`))('native wrapper guards', () => {
  const binding = (loaded as { binding: Binding }).binding;

  it('refuses a load spec that is not an object with a coded error (thrown or rejected)', async () => {
    let caught: { code?: string } | undefined;
    try {
      await binding.load(42);
    } catch (err) {
      caught = err as { code?: string };
    }
    expect(caught?.code).toBe('RUNTIME_INPUT_INVALID');
  });

  it('answers `new` on the model class, and calls on a disposed model, with coded errors', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const src = await writeNet(root, buildNet('classifier'), 'onnx');
      const model = await binding.load({ framework: 'onnx', model: join(src.dir, src.params.model_file) });
      const Ctor = model.constructor as new () => unknown;
      expect(() => new Ctor()).toThrow(expect.objectContaining({ code: expect.stringMatching(/^[A-Z_]+$/) }));
      model.dispose();
      expect(() => model.info()).toThrow(expect.objectContaining({ code: 'RUNTIME_MODEL_UNLOADED' }));
      let caught: { code?: string } | undefined;
      try {
        await model.forward({});
      } catch (err) {
        caught = err as { code?: string };
      }
      expect(caught?.code).toBe('RUNTIME_MODEL_UNLOADED');
    } finally {
      await cleanup();
    }
  });

  it('exposes a stable ABI number and a no-op call, inline and through the pool', async () => {
    expect(binding.abi).toBe(1);
    for (let i = 0; i < 50; i++) {
      await expect(binding.noop()).resolves.toBeNull();
      await expect(binding.noop(true)).resolves.toBeNull();
    }
  });

  // Cheap runs move from the thread pool to the JS thread once their cost is known (CallCost in
  // addons/core/outpost_addon.h), and an inline attempt that finds a pool run holding the model's
  // lock goes to the pool instead. Whichever path a run takes, its answer must be the same.
  it('answers every run of a tiny net identically, sequential and concurrent, whichever path it takes', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const net = buildNet('classifier');
      const src = await writeNet(root, net, 'onnx');
      const model = await binding.load({ framework: 'onnx', model: join(src.dir, src.params.model_file) });
      const [w, h] = net.size;
      const feed = [
        {
          name: 'data',
          shape: [1, 3, h, w],
          data: Float32Array.from({ length: 3 * h * w }, (_, i) => (i % 7) / 7),
        },
      ];
      const first = Array.from((await model.forward(feed))[0]!.data);
      for (let i = 0; i < 40; i++) expect(Array.from((await model.forward(feed))[0]!.data)).toEqual(first);
      const together = await Promise.all(Array.from({ length: 24 }, () => model.forward(feed)));
      for (const out of together) expect(Array.from(out[0]!.data)).toEqual(first);
      // A short tensor is refused before any path is chosen (thrown synchronously, with its code).
      let caught: { code?: string } | undefined;
      try {
        await model.forward([{ name: 'data', shape: [1, 3, h, w], data: new Float32Array(2) }]);
      } catch (err) {
        caught = err as { code?: string };
      }
      expect(caught?.code).toBe('RUNTIME_INPUT_INVALID');
      // And the model still answers after it.
      expect(Array.from((await model.forward(feed))[0]!.data)).toEqual(first);
      model.dispose();
    } finally {
      await cleanup();
    }
  });
});

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
  load(spec: unknown): Promise<{ dispose(): void; info(): unknown; forward(i: unknown): Promise<unknown> }>;
  noop(): Promise<void>;
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

  it('exposes a stable ABI number and a no-op call', async () => {
    expect(binding.abi).toBe(1);
    await expect(binding.noop()).resolves.not.toBeInstanceOf(Error);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../agent/runtime/runtime.js';
import type { ClassificationResult } from '../../agent/runtime/postprocess/index.js';
import { rectsImage } from '../fixtures/images.js';
import { writeModelFolder } from '../fixtures/model-folder.js';

/**
 * Version switches while 16 callers keep predicting: no request fails, every answer names the
 * version it ran on, and each replaced version is unloaded only after its last request.
 */
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-switch-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('runtime: version switch under load', () => {
  it('switches 4 times under 16 concurrent callers with zero failures', async () => {
    const rt = new Runtime();
    const id = 'test/switch';
    const dirs: string[] = [];
    for (let v = 1; v <= 5; v++) {
      const dir = join(root, String(v));
      // Version v is a bigger network input, so a wrong pairing of version and model would show.
      await writeModelFolder(dir, 'classifier', { id, size: [16 + 8 * v, 16 + 8 * v] });
      dirs.push(dir);
    }
    const unloaded: number[] = [];
    rt.events.on('unloaded', (e) => {
      unloaded.push(e.version);
    });
    await rt.activate(id, 1, dirs[0]!);

    const img = rectsImage(40, 30, [10, 200, 30], []);
    let stop = false;
    const failures: unknown[] = [];
    const seen = new Set<number>();
    let done = 0;
    const caller = async () => {
      while (!stop) {
        try {
          const r = (await rt.predict(id, img)) as ClassificationResult & { version: number };
          if (r.predictions[0]?.label !== 'green') throw new Error(`wrong answer from v${r.version}`);
          seen.add(r.version);
          done++;
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const callers = Array.from({ length: 16 }, caller);
    for (let v = 2; v <= 5; v++) {
      await new Promise((r) => setTimeout(r, 30));
      await rt.activate(id, v, dirs[v - 1]!);
    }
    await new Promise((r) => setTimeout(r, 30));
    stop = true;
    await Promise.all(callers);

    expect(failures).toEqual([]);
    expect(done).toBeGreaterThan(16);
    expect(rt.get(id)!.version).toBe(5);
    expect([...seen].sort()).toContain(5);
    // Every replaced version was unloaded exactly once, after its requests ended.
    await new Promise((r) => setTimeout(r, 10));
    expect(unloaded.sort()).toEqual([1, 2, 3, 4]);
    await rt.close();
    expect(unloaded.sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps the active version when a new one fails to load or fails its smoke test', async () => {
    const rt = new Runtime();
    const id = 'test/keep';
    const good = join(root, 'keep-1');
    await writeModelFolder(good, 'classifier', { id });
    await rt.activate(id, 1, good);
    const failed: string[] = [];
    rt.events.on('failed', (e) => {
      failed.push(e.code);
    });

    const wrongSize = join(root, 'keep-2');
    await writeModelFolder(wrongSize, 'classifier', { id, params: { size: [10, 10] } }); // network is 32x32
    await expect(rt.activate(id, 2, wrongSize)).rejects.toMatchObject({ code: 'RUNTIME_SMOKE_TEST_FAILED' });

    const { writeFile } = await import('node:fs/promises');
    const corrupt = join(root, 'keep-3');
    await writeModelFolder(corrupt, 'classifier', { id });
    await writeFile(join(corrupt, 'model.onnx'), Buffer.from('not an onnx model'));
    await expect(rt.activate(id, 3, corrupt)).rejects.toMatchObject({ code: 'RUNTIME_MODEL_LOAD_FAILED' });

    const otherId = join(root, 'keep-4');
    await writeModelFolder(otherId, 'classifier', { id: 'test/other' });
    await expect(rt.activate(id, 4, otherId)).rejects.toMatchObject({ code: 'RUNTIME_MODEL_LOAD_FAILED' });

    // The store's gate refuses the same bad folders without touching what is served.
    await expect(rt.beforeActivate(wrongSize)).rejects.toMatchObject({ code: 'RUNTIME_SMOKE_TEST_FAILED' });
    await expect(rt.beforeActivate(good)).resolves.toBeUndefined();

    expect(failed).toEqual(['RUNTIME_SMOKE_TEST_FAILED', 'RUNTIME_MODEL_LOAD_FAILED', 'RUNTIME_MODEL_LOAD_FAILED']);
    expect(rt.get(id)!.version).toBe(1);
    const r = (await rt.predict(id, rectsImage(8, 8, [0, 0, 250], []))) as ClassificationResult;
    expect(r.predictions[0]!.label).toBe('blue');
    await rt.close();
  });
});

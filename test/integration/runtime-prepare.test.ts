import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Runtime } from '../../agent/runtime/runtime.js';
import { ModelVersion } from '../../agent/runtime/model-version.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { encodePng, rawImage } from '../fixtures/images.js';

/** prepare() (the store's activation gate) + activate() load a model once, not twice. */
describe('runtime prepare then activate', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('reuses the smoke-tested instance after the folder moved, and serves from the new path', async () => {
    const root = await mkdtemp(join(tmpdir(), 'outpost-prepare-'));
    dirs.push(root);
    const staging = join(root, 'staging');
    const final = join(root, 'versions-1');
    await writeModelFolder(staging, 'classifier', { id: 'acme/colors' });
    const loads = vi.spyOn(ModelVersion, 'load');
    const rt = new Runtime();
    try {
      await rt.prepare('acme/colors', 1, staging);
      await rename(staging, final); // what the store does between the gate and the flip
      await rt.activate('acme/colors', 1, final);
      expect(loads).toHaveBeenCalledTimes(1);
      expect(rt.get('acme/colors')?.dir).toBe(final);
      const red = await encodePng(rawImage(16, 16, () => [240, 5, 5]));
      const out = await rt.predict('acme/colors', red);
      expect(JSON.stringify(out)).toContain('red');
      // A different version than the prepared one is loaded from disk as before.
      await writeModelFolder(join(root, 'v2'), 'classifier', { id: 'acme/colors' });
      await rt.activate('acme/colors', 2, join(root, 'v2'));
      expect(loads).toHaveBeenCalledTimes(2);
    } finally {
      loads.mockRestore();
      await rt.close();
    }
  });

  it('a prepare that fails the smoke test keeps nothing, and close() disposes an unused prepared one', async () => {
    const root = await mkdtemp(join(tmpdir(), 'outpost-prepare-'));
    dirs.push(root);
    await writeModelFolder(join(root, 'a'), 'classifier', { id: 'acme/colors' });
    const rt = new Runtime();
    await expect(rt.prepare('acme/other', 1, join(root, 'a'))).rejects.toMatchObject({
      code: 'RUNTIME_MODEL_LOAD_FAILED',
    });
    await rt.prepare('acme/colors', 1, join(root, 'a'));
    await rt.close();
    expect(rt.list()).toEqual([]);
  });
});

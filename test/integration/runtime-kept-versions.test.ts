import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../agent/runtime/runtime.js';
import type { ClassificationResult } from '../../agent/runtime/postprocess/index.js';
import { rectsImage } from '../fixtures/images.js';
import { writeModelFolder } from '../fixtures/model-folder.js';

/**
 * Per-version serving in the runtime: an older version kept on disk is loaded on demand, served
 * next to the active one, unloaded when idle, and all of them stay within the memory budget.
 * Versions differ by their label files, so an answer shows which version produced it.
 */
let root: string;
const dirs = new Map<number, string>();
const ID = 'acme/colors';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-kept-'));
  for (const [v, labels] of [
    [1, ['rot', 'gruen', 'blau']],
    [2, ['rouge', 'vert', 'bleu']],
    [3, ['red', 'green', 'blue']],
  ] as const) {
    const dir = join(root, String(v));
    await writeModelFolder(dir, 'classifier', { id: ID });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'labels.txt'), labels.join('\n') + '\n');
    dirs.set(v, dir);
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const red = rectsImage(8, 8, [250, 0, 0], []);
const top = async (rt: Runtime, version?: number) =>
  ((await rt.predict(ID, red, version === undefined ? {} : { version })) as ClassificationResult).predictions[0]!.label;

function runtime(opts: { budgetBytes?: number; idleMs?: number } = {}): Runtime {
  return new Runtime({ versions: { resolve: async (_id, v) => dirs.get(v) ?? null, ...opts } });
}

describe('kept versions', () => {
  it('serves an older kept version on demand next to the active one, and says when a version is not on disk', async () => {
    const rt = runtime();
    await rt.activate(ID, 3, dirs.get(3)!);
    expect(await top(rt)).toBe('red');
    expect(rt.kept!.loaded(ID)).toEqual([]);
    expect(await top(rt, 1)).toBe('rot');
    expect(await top(rt, 2)).toBe('rouge');
    expect(rt.kept!.loaded(ID).sort()).toEqual([1, 2]);
    expect(rt.get(ID, 1)).toMatchObject({ version: 1, labels: ['rot', 'gruen', 'blau'] });
    const r = await rt.infer(
      ID,
      { data: { dtype: 'float32', shape: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32) } },
      { version: 2 },
    );
    expect(r.version).toBe(2);
    await expect(rt.predict(ID, red, { version: 9 })).rejects.toMatchObject({ code: 'RUNTIME_MODEL_NOT_LOADED' });
    await rt.close();
    expect(rt.kept!.loaded(ID)).toEqual([]);
  });

  it('unloads a kept version once idle, and loads it again on the next request', async () => {
    const rt = runtime({ idleMs: 50 });
    await rt.activate(ID, 3, dirs.get(3)!);
    expect(await top(rt, 1)).toBe('rot');
    expect(rt.kept!.loaded(ID)).toEqual([1]);
    const deadline = Date.now() + 5_000;
    while (rt.kept!.loaded(ID).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(rt.kept!.loaded(ID)).toEqual([]);
    expect(await top(rt, 1)).toBe('rot');
    await rt.close();
  });

  it('stays within the budget: the least recently used idle version goes first; versions in use are never evicted', async () => {
    const { stat } = await import('node:fs/promises');
    const { readdir } = await import('node:fs/promises');
    let one = 0;
    for (const f of await readdir(dirs.get(1)!)) one += (await stat(join(dirs.get(1)!, f))).size;
    // Room for one kept version, not two.
    const rt = runtime({ budgetBytes: Math.floor(one * 1.5) });
    await rt.activate(ID, 3, dirs.get(3)!);
    expect(await top(rt, 1)).toBe('rot');
    expect(await top(rt, 2)).toBe('rouge');
    expect(rt.kept!.loaded(ID)).toEqual([2]);
    // While version 2 is held by a request, version 1 cannot get room.
    let release!: () => void;
    const held = rt.kept!.use(ID, 2, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 10));
    await expect(rt.predict(ID, red, { version: 1 })).rejects.toMatchObject({ code: 'RUNTIME_VERSION_BUDGET' });
    release();
    await held;
    expect(await top(rt, 1)).toBe('rot');
    expect(rt.kept!.loaded(ID)).toEqual([1]);
    await rt.close();
  });

  it('a runtime without kept versions answers only its active version', async () => {
    const rt = new Runtime();
    await rt.activate(ID, 3, dirs.get(3)!);
    await expect(rt.predict(ID, red, { version: 1 })).rejects.toMatchObject({ code: 'RUNTIME_MODEL_NOT_LOADED' });
    await rt.close();
  });
});

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servingRuntime } from '../../agent/api/runtime-adapter.js';
import { createApiServer, type ApiServer } from '../../agent/api/server.js';
import { AgentClient } from '../../agent/client/index.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger } from '../../protocol/log.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { randomInput } from './api-harness.js';

/**
 * The API's model-name index (agent/api/runtime-adapter.ts): built once per runtime generation
 * instead of on every request, so it must follow every change of what is served. Real runtime,
 * real models, the real socket: install (a new version activated), another owner's model with
 * the same name part (an alias becomes ambiguous), rollback (an older version activated again),
 * a failed activation, a kept version loaded on demand, and remove (unload).
 */
let root: string;
let rt: Runtime;
let serving: ReturnType<typeof servingRuntime>;
let server: ApiServer;
let client: AgentClient;
const dirs = new Map<string, string>();

const input = { data: { dtype: 'float32' as const, shape: [1, 3, 32, 32], data: randomInput(3072) } };
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as OutpostError).code;
  }
  return 'no error';
};
const folder = async (id: string, version: number) => {
  const dir = join(root, id.replace('/', '_'), String(version));
  await writeModelFolder(dir, 'classifier', { id });
  dirs.set(`${id}@${version}`, dir);
  return dir;
};
const served = (name: string) => client.infer(name, input, { binary: true }).then((r) => Number(r.meta.model_version));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-name-index-'));
  rt = new Runtime({
    log: silentLogger,
    versions: { resolve: async (id, v) => dirs.get(`${id}@${v}`) ?? null },
  });
  serving = servingRuntime(rt);
  server = createApiServer({ runtime: serving, log: silentLogger });
  await server.listen(join(root, 'agent.sock'));
  client = new AgentClient({ socket: join(root, 'agent.sock') });
});
afterAll(async () => {
  client?.close();
  await server?.close();
  serving?.dispose();
  await rt?.close();
  await rm(root, { recursive: true, force: true });
});

describe('the model-name index', () => {
  it('follows install, a second owner, rollback, a failed activation, kept versions and remove', async () => {
    expect(serving.list()).toEqual([]);
    expect(code(() => serving.lookup('colors'))).toBe('API_MODEL_NOT_FOUND');

    // Install: version 1, then 2.
    await rt.activate('acme/colors', 1, await folder('acme/colors', 1));
    expect(await served('colors')).toBe(1);
    expect(await served('acme/colors')).toBe(1);
    const unchanged = serving.list();
    // Nothing changed: the same list, not a rebuilt one (what makes the index cheap).
    expect(serving.list()).toBe(unchanged);
    await rt.activate('acme/colors', 2, await folder('acme/colors', 2));
    expect(serving.list()).not.toBe(unchanged);
    expect(await served('colors')).toBe(2);
    expect(serving.lookup('colors')).toMatchObject({ id: 'acme/colors', activeVersion: 2, loadedVersions: [2] });
    expect(serving.describe('acme/colors')?.version).toBe(2);

    // Another owner's model with the same name part: the alias is ambiguous, full names serve.
    await rt.activate('zeta/colors', 1, await folder('zeta/colors', 1));
    expect(code(() => serving.lookup('colors'))).toBe('API_MODEL_AMBIGUOUS');
    const ambiguous = await client.infer('colors', input).catch((e: unknown) => e);
    expect((ambiguous as OutpostError).code).toBe('API_MODEL_AMBIGUOUS');
    expect(await served('zeta/colors')).toBe(1);
    expect(serving.list().map((m) => m.id)).toEqual(['acme/colors', 'zeta/colors']);

    // Rollback: version 1 active again.
    await rt.activate('acme/colors', 1, dirs.get('acme/colors@1')!);
    expect(await served('acme/colors')).toBe(1);
    expect(serving.describe('acme/colors')?.version).toBe(1);

    // A failed activation of a model that has nothing active: listed as failed, not servable.
    const broken = join(root, 'broken');
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, 'alwaysai.model.json'), '{"id": "acme/broken"}');
    await expect(rt.activate('acme/broken', 1, broken)).rejects.toBeInstanceOf(OutpostError);
    expect(serving.lookup('broken')).toMatchObject({ id: 'acme/broken', state: 'failed', activeVersion: null });
    const notReady = await client.infer('acme/broken', input).catch((e: unknown) => e);
    expect((notReady as OutpostError).code).toBe('API_MODEL_NOT_READY');

    // A kept version loaded on demand shows in loadedVersions; unloading it takes it out again.
    expect(await client.infer('acme/colors', input, { version: 2 }).then((r) => r.meta.model_version)).toBe('2');
    expect(serving.lookup('acme/colors').loadedVersions).toEqual([1, 2]);
    await rt.kept!.unload('acme/colors', 2);
    expect(serving.lookup('acme/colors').loadedVersions).toEqual([1]);

    // Remove: the other owner's model goes, and the alias names one model again.
    await rt.unload('zeta/colors');
    expect(code(() => serving.lookup('zeta/colors'))).toBe('API_MODEL_NOT_FOUND');
    const gone = await client.infer('zeta/colors', input).catch((e: unknown) => e);
    expect((gone as OutpostError).code).toBe('API_MODEL_NOT_FOUND');
    expect(await served('colors')).toBe(1);
    expect(serving.list().map((m) => m.id)).toEqual(['acme/broken', 'acme/colors']);
  });

  it('changes the runtime generation with every change of what list() shows, and only then', async () => {
    const at = rt.generation;
    await served('acme/colors');
    rt.list();
    expect(rt.generation).toBe(at);
    await rt.activate('acme/other', 1, await folder('acme/other', 1));
    const afterActivate = rt.generation;
    expect(afterActivate).toBeGreaterThan(at);
    await rt.kept!.ensure('acme/colors', 2);
    const afterKept = rt.generation;
    expect(afterKept).toBeGreaterThan(afterActivate);
    await rt.unload('acme/other');
    expect(rt.generation).toBeGreaterThan(afterKept);
  });
});

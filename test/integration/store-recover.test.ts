import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readlink, rm, symlink, rename, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../agent/store/index.js';
import { publish, startBlobServer, versionContent, type BlobServer } from '../helpers/blob-server.js';

/**
 * recover() after a crash at each step boundary of an install, recreated by hand on disk (the
 * kill -9 fault test hits them at random; this pins each one down).
 */
const ID = 'acme/detector';
let server: BlobServer;
let dir: string;

beforeAll(async () => {
  server = await startBlobServer();
});
afterAll(() => server.close());
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-recover-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function installed(versions: number[], keep = 3): Promise<void> {
  const store = await openStore({ dir, keep, marginBytes: 0 });
  for (const v of versions)
    await store.installVersion({
      id: ID,
      version: v,
      files: publish(server, versionContent(v)),
      source: { baseUrl: server.url },
    });
}

function intent(version: number, preexisting = false): string {
  return JSON.stringify({
    v: 1,
    op: 'install',
    id: ID,
    version,
    staging: `acme+detector+${version}+dead`,
    preexisting,
    startedAt: new Date().toISOString(),
  });
}

const model = (...p: string[]): string => join(dir, 'acme/detector', ...p);

describe('recover()', () => {
  it('undoes an install that crashed while staging', async () => {
    await installed([1]);
    await mkdir(join(dir, '.outpost/staging/acme+detector+2+dead/sub'), { recursive: true });
    await writeFile(join(dir, '.outpost/staging/acme+detector+2+dead/sub/half'), 'x');
    await writeFile(join(dir, '.outpost/journal.json'), intent(2));
    const store = await openStore({ dir });
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
    expect(await readdir(join(dir, '.outpost/staging'))).toEqual([]);
    expect(existsSync(join(dir, '.outpost/journal.json'))).toBe(false);
  });

  it('undoes an install that crashed after placing versions/<v> but before the flip', async () => {
    await installed([1, 2]);
    // Make it look as if 2 was placed but never activated.
    await symlink('versions/1', model('current.tmp-1234'));
    await rename(model('current.tmp-1234'), model('current'));
    await writeFile(join(dir, '.outpost/journal.json'), intent(2));
    await symlink('versions/2', model('current.tmp-abcd'));
    const store = await openStore({ dir });
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
    expect((await readdir(model())).sort()).toEqual(['current', 'versions']);
  });

  it('keeps a version that existed before the interrupted install', async () => {
    await installed([1, 2]);
    await (await openStore({ dir })).rollback(ID);
    await writeFile(join(dir, '.outpost/journal.json'), intent(2, true));
    const store = await openStore({ dir });
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1, 2] }]);
  });

  it('finishes an install that crashed after the flip (prunes, clears the journal)', async () => {
    await installed([1, 2], 3);
    // keep=2 now, and a crash after flipping to 3 left 1 unpruned.
    await installed([3], 3);
    await writeFile(join(dir, '.outpost/journal.json'), intent(3));
    const store = await openStore({ dir, keep: 2 });
    expect(await store.list()).toEqual([{ id: ID, current: 3, versions: [2, 3] }]);
    expect(await readlink(model('current'))).toBe('versions/3');
    expect(existsSync(join(dir, '.outpost/journal.json'))).toBe(false);
  });

  it('finishes a half-done delete from the trash and sets a corrupt journal aside', async () => {
    await installed([1]);
    await mkdir(join(dir, '.outpost/trash/0123/x'), { recursive: true });
    await writeFile(join(dir, '.outpost/journal.json'), '{"v":1,"op":"ins');
    const store = await openStore({ dir });
    expect(await readdir(join(dir, '.outpost/trash'))).toEqual([]);
    expect(existsSync(join(dir, '.outpost/journal.json.bad'))).toBe(true);
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
  });
});

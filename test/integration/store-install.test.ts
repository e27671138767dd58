import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store, type VersionFile } from '../../agent/store/index.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { useBlobFixture } from '../helpers/blob-fixture.js';
import { publish, versionContent } from '../helpers/blob-server.js';
import { codeOfRejection } from '../helpers/error-code.js';

const ID = 'acme/detector';
const fx = useBlobFixture('outpost-store-');
let store: Store;

beforeEach(async () => {
  store = await openStore({ dir: fx.dir, keep: 3, backoffMs: 1, marginBytes: 0 });
});

const source = (): { baseUrl: string } => ({ baseUrl: fx.server.url });

async function install(
  version: number,
  extra: Partial<Parameters<Store['installVersion']>[0]> = {},
): Promise<VersionFile[]> {
  const files = publish(fx.server, versionContent(version));
  await store.installVersion({ id: ID, version, files, source: source(), ...extra });
  return files;
}

/** The current version's folder holds exactly the files of `version`, byte for byte. */
async function expectCurrent(version: number): Promise<void> {
  expect(await readlink(join(fx.dir, 'acme/detector/current'))).toBe(`versions/${version}`);
  const want = versionContent(version);
  const cur = join(fx.dir, 'acme/detector/current');
  for (const [path, data] of want) expect((await readFile(join(cur, path))).equals(data)).toBe(true);
  const top = (await readdir(cur)).sort();
  expect(top).toEqual(['file-0.bin', 'file-2.bin', 'shared.bin', 'sub']);
}

describe('store install / activate / rollback', () => {
  it('installs a version: verified read-only files, current symlink, listed', async () => {
    const phases = new Set<string>();
    await install(1, { onProgress: (p) => phases.add(p.phase) });
    await expectCurrent(1);
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
    expect((await stat(join(fx.dir, 'acme/detector/versions/1/shared.bin'))).mode & 0o777).toBe(0o440);
    expect([...phases]).toEqual(['downloading', 'verifying', 'installing']);
    expect(existsSync(join(fx.dir, '.outpost/journal.json'))).toBe(false);
    expect(await store.currentDir(ID)).toBe(join(fx.dir, 'acme/detector/versions/1'));
  });

  it('does not download a file the device already has (same sha256 in an installed version)', async () => {
    await install(1);
    fx.server.requests.length = 0;
    const files = publish(fx.server, versionContent(2));
    const r = await store.installVersion({ id: ID, version: 2, files, source: source() });
    expect(r.reused).toBe(1);
    expect(r.downloaded).toBe(files.length - 1);
    const shared = files.find((f) => f.path === 'shared.bin')!;
    expect(fx.server.requests.map((q) => q.sha256)).not.toContain(shared.sha256);
    // Same inode: the file is linked, not stored twice.
    const a = await stat(join(fx.dir, 'acme/detector/versions/1/shared.bin'));
    const b = await stat(join(fx.dir, 'acme/detector/versions/2/shared.bin'));
    expect(a.ino).toBe(b.ino);
    await expectCurrent(2);
  });

  it('rolls back to the previous kept version, then refuses when none is older', async () => {
    await install(1);
    await install(2);
    expect(await store.rollback(ID)).toEqual({ from: 2, to: 1 });
    await expectCurrent(1);
    expect(await codeOfRejection(store.rollback(ID))).toBe('STORE_NO_PREVIOUS_VERSION');
    await store.activate(ID, 2);
    await expectCurrent(2);
    expect(await codeOfRejection(store.activate(ID, 7))).toBe('STORE_NOT_INSTALLED');
  });

  it('keeps the last N versions and GC deletes blobs nothing uses', async () => {
    store = await openStore({ dir: fx.dir, keep: 2, backoffMs: 1, marginBytes: 0 });
    const v1 = await install(1);
    await install(2);
    await install(3);
    expect(await store.list()).toEqual([{ id: ID, current: 3, versions: [2, 3] }]);
    const onlyV1 = v1.filter((f) => f.path !== 'shared.bin');
    for (const f of onlyV1) expect(existsSync(join(fx.dir, '.outpost/blobs', f.sha256))).toBe(true);
    const g = await store.gc();
    expect(g.blobs).toBe(onlyV1.length);
    for (const f of onlyV1) expect(existsSync(join(fx.dir, '.outpost/blobs', f.sha256))).toBe(false);
    expect(existsSync(join(fx.dir, '.outpost/blobs', v1[0].sha256))).toBe(true);
    await expectCurrent(3);
  });

  it('is idempotent for the current version and cancellable mid-download (the next try resumes)', async () => {
    await install(1);
    fx.server.requests.length = 0;
    let hookRuns = 0;
    await install(1, { beforeActivate: async () => void hookRuns++ });
    expect(fx.server.requests).toHaveLength(0);
    expect(hookRuns).toBe(0);

    fx.server.misbehave({ pieceSize: 8 * 1024, delayMs: 5 });
    const ac = new AbortController();
    const files = publish(fx.server, versionContent(2));
    const p = store.installVersion({
      id: ID,
      version: 2,
      files,
      source: source(),
      signal: ac.signal,
      onProgress: (q) => q.phase === 'downloading' && q.done > 40_000 && ac.abort(),
    });
    expect(await codeOfRejection(p)).toBe('FETCH_ABORTED');
    await expectCurrent(1);
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
    fx.server.misbehave({});
    const r = await store.installVersion({ id: ID, version: 2, files, source: source() });
    const needed = files.filter((f) => f.path !== 'shared.bin').reduce((n, f) => n + f.size, 0);
    expect(r.bytesFetched).toBeLessThan(needed - 30_000);
    await expectCurrent(2);
  });

  it('removes a model', async () => {
    await install(1);
    await store.remove(ID);
    expect(await store.list()).toEqual([]);
    expect(existsSync(join(fx.dir, 'acme'))).toBe(false);
    expect(await codeOfRejection(store.rollback(ID))).toBe('STORE_NOT_INSTALLED');
  });
});

describe('store refuses bad input and bad bytes, keeping the old version', () => {
  it('rejects unsafe paths before anything is written', async () => {
    const good = publish(fx.server, versionContent(1))[0];
    const bad = ['../evil', '/etc/passwd', 'a/../../b', 'a\\b', 'a//b', '', 'a/./b', 'x\0y', 'dir/', '..'];
    for (const path of bad) {
      const files = [{ ...good, path }];
      expect(await codeOfRejection(store.installVersion({ id: ID, version: 1, files, source: source() }))).toBe(
        'STORE_PATH_INVALID',
      );
    }
    expect(
      await codeOfRejection(store.installVersion({ id: ID, version: 1, files: [good, { ...good }], source: source() })),
    ).toBe('STORE_PATH_INVALID');
    expect(
      await codeOfRejection(
        store.installVersion({
          id: ID,
          version: 1,
          files: [
            { ...good, path: 'a' },
            { ...good, path: 'a/b' },
          ],
          source: source(),
        }),
      ),
    ).toBe('STORE_PATH_INVALID');
    expect(fx.server.requests).toHaveLength(0);
    expect(existsSync(join(fx.dir, 'acme'))).toBe(false);
    expect(existsSync(join(fx.dir, '.outpost/journal.json'))).toBe(false);
  });

  it('a failing beforeActivate keeps the previous version current', async () => {
    await install(1);
    let seen: string[] = [];
    const err = await codeOfRejection(
      install(2, {
        beforeActivate: async (versionDir, manifest) => {
          seen = (await readdir(versionDir)).sort();
          expect(manifest.version).toBe(2);
          throw new Error('smoke inference produced NaN');
        },
      }),
    );
    expect(err).toBe('STORE_ACTIVATION_FAILED');
    expect(seen).toEqual(['file-0.bin', 'file-2.bin', 'shared.bin', 'sub']);
    await expectCurrent(1);
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
    // An OutpostError from the hook keeps its own code.
    const own = await codeOfRejection(
      install(2, {
        beforeActivate: async () => {
          throw new OutpostError('IO_ERROR', 'backend could not read the file');
        },
      }),
    );
    expect(own).toBe('IO_ERROR');
    await expectCurrent(1);
  });

  it('a flipped byte on the wire fails the install and the old version keeps serving', async () => {
    await install(1);
    fx.server.misbehave({ flipByteAt: 10 });
    expect(await codeOfRejection(install(2))).toBe('FETCH_HASH_MISMATCH');
    await expectCurrent(1);
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
    expect(await readdir(join(fx.dir, '.outpost/staging'))).toEqual([]);
  });

  it('a corrupted cache blob is caught at staging, dropped, and refetched next time', async () => {
    await install(1);
    const files = publish(fx.server, versionContent(2));
    const f = files.find((x) => x.path === 'file-0.bin')!;
    const blobPath = join(fx.dir, '.outpost/blobs', f.sha256);
    await writeFile(blobPath, Buffer.alloc(f.size, 7));
    await chmod(blobPath, 0o444);
    expect(await codeOfRejection(store.installVersion({ id: ID, version: 2, files, source: source() }))).toBe(
      'STORE_FILE_MISMATCH',
    );
    await expectCurrent(1);
    expect(existsSync(blobPath)).toBe(false);
    await store.installVersion({ id: ID, version: 2, files, source: source() });
    await expectCurrent(2);
  });

  it('refuses to start when the disk lacks room for the downloads plus the margin', async () => {
    await install(1);
    store = await openStore({ dir: fx.dir, marginBytes: Number.MAX_SAFE_INTEGER / 2 });
    const e = await codeOfRejection(install(2));
    expect(e).toBe('FETCH_NO_SPACE');
    await expectCurrent(1);
  });
});

import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../agent/store/index.js';
import type { OutpostError } from '../../protocol/errors/index.js';
import { publish, startBlobServer, type BlobServer } from '../helpers/blob-server.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { bigFile, childCommand, contentOf, versionProblem } from './store-fixture.js';

/**
 * Disk full, for real: the models folder lives on a 2 MiB tmpfs. First the free-disk pre-check
 * refuses a version that cannot fit; then, with the check turned off (as if another process had
 * filled the disk after it), the write itself hits ENOSPC. Either way the old version keeps
 * serving, every file of it intact, and the space taken by the failed download is given back.
 * Where mounting is not allowed (no CAP_SYS_ADMIN), the second half runs in a child process
 * under `ulimit -f` instead (the kernel refuses the write with EFBIG): a real limit either way.
 */
const ID = 'acme/detector';
let mnt: string;
let mounted = false;
let server: BlobServer;

function tryMount(): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', mnt], { stdio: 'pipe' });
    mounted = true;
    return null;
  } catch (err) {
    return `cannot mount a small tmpfs (needs root and CAP_SYS_ADMIN): ${(err as Error).message.split('\n')[0]}`;
  }
}

beforeAll(async () => {
  mnt = await mkdtemp(join(tmpdir(), 'outpost-diskfull-'));
  server = await startBlobServer();
});
afterAll(async () => {
  await server.close();
  if (mounted) execFileSync('umount', [mnt]);
  await rm(mnt, { recursive: true, force: true });
});

async function free(): Promise<number> {
  const s = await statfs(mnt);
  return s.bavail * s.bsize;
}

describe('disk full', () => {
  it('keeps the old version serving when a new one does not fit (2 MiB tmpfs)', async (ctx) => {
    const why = tryMount();
    if (why) {
      console.warn(`[disk-full] ${why}; the ulimit -f test below covers ENOSPC-like failures`);
      return ctx.skip();
    }
    let store: Store = await openStore({ dir: mnt, marginBytes: 0, backoffMs: 1 });
    const v1 = contentOf(1);
    await store.installVersion({ id: ID, version: 1, files: publish(server, v1), source: { baseUrl: server.url } });
    const current = join(mnt, 'acme/detector/current');
    expect(await versionProblem(current, 1)).toBeNull();

    // Version 2 carries a 3 MiB file: more than the whole filesystem.
    const big = new Map(contentOf(2));
    big.set('weights.bin', Buffer.alloc(3 * 1024 * 1024, 0x5a));
    const files = publish(server, big);
    const freeBefore = await free();
    expect(
      await codeOfRejection(store.installVersion({ id: ID, version: 2, files, source: { baseUrl: server.url } })),
    ).toBe('FETCH_NO_SPACE');
    expect(await versionProblem(current, 1)).toBeNull();

    // Past the pre-check, the write itself fails with ENOSPC.
    store = await openStore({ dir: mnt, marginBytes: 0, backoffMs: 1, checkFreeSpace: false });
    const err = await store
      .installVersion({ id: ID, version: 2, files, source: { baseUrl: server.url } })
      .catch((e: unknown) => e);
    expect((err as OutpostError).code).toBe('FETCH_NO_SPACE');
    expect((err as OutpostError).message).toMatch(/no space left/);
    expect(await versionProblem(current, 1)).toBeNull();
    expect(await store.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
    expect(await readdir(join(mnt, '.outpost/staging'))).toEqual([]);
    expect(existsSync(join(mnt, '.outpost/journal.json'))).toBe(false);
    const partials = (await readdir(join(mnt, '.outpost/blobs'))).filter((n) => n.endsWith('.part'));
    expect(partials).toEqual([]);
    // Blobs of version 2 that did fit stay cached for the next try; GC gives them back.
    await store.gc();
    expect(await free()).toBeGreaterThanOrEqual(freeBefore);

    // Once the version fits, the same store converges.
    await store.installVersion({
      id: ID,
      version: 3,
      files: publish(server, contentOf(3)),
      source: { baseUrl: server.url },
    });
    expect(await versionProblem(current, 3)).toBeNull();
  });

  it('keeps the old version serving when a write hits the file-size limit (ulimit -f in a child)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-fsize-'));
    const cmd = await childCommand();
    try {
      const store = await openStore({ dir, marginBytes: 0, backoffMs: 1 });
      await store.installVersion({
        id: ID,
        version: 1,
        files: publish(server, contentOf(1)),
        source: { baseUrl: server.url },
      });
      // Version 2 with a 3 MiB file, installed by a child that may not write files over 1 MiB.
      for (const data of contentOf(2).values()) server.add(data);
      const big = 3 * 1024 * 1024;
      server.add(bigFile(big));
      const out = await new Promise<string>((resolve, reject) => {
        execFile(
          'bash',
          [
            '-c',
            'ulimit -f 1024 && exec "$@"',
            'bash',
            process.execPath,
            ...cmd.args,
            dir,
            server.url,
            '2',
            String(big),
          ],
          (err, stdout) => (err && (err as { code?: unknown }).code !== 3 ? reject(err) : resolve(stdout)),
        );
      });
      const answer = JSON.parse(out.trim().split('\n').at(-1)!) as { code: string; message: string };
      expect(answer.code).toBe('FETCH_NO_SPACE');
      const reopened = await openStore({ dir });
      expect(await reopened.list()).toEqual([{ id: ID, current: 1, versions: [1] }]);
      expect(await versionProblem(join(dir, 'acme/detector/current'), 1)).toBeNull();
      expect((await readdir(join(dir, '.outpost/blobs'))).filter((n) => n.endsWith('.part'))).toEqual([]);
      expect(existsSync(join(dir, '.outpost/journal.json'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
      if (cmd.cleanup) await rm(cmd.cleanup, { force: true });
    }
  });
});

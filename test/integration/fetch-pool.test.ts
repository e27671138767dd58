import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BlobPool } from '../../agent/fetch/index.js';
import type { OutpostError } from '../../protocol/errors/index.js';
import { useBlobFixture } from '../helpers/blob-fixture.js';

const fx = useBlobFixture('outpost-pool-');
const blobs: { sha256: string; size: number; data: Buffer }[] = [];

beforeAll(() => {
  for (let i = 0; i < 6; i++) {
    const data = randomBytes(100_000 + i);
    blobs.push({ sha256: fx.server.add(data), size: data.length, data });
  }
});

const refs = (): { sha256: string; size: number }[] => blobs.map(({ sha256, size }) => ({ sha256, size }));

describe('BlobPool', () => {
  it('downloads in parallel up to the bound, once per sha256, into read-only cache files', async () => {
    fx.server.misbehave({ pieceSize: 10_000, delayMs: 5 });
    const pool = new BlobPool({ cacheDir: fx.dir, concurrency: 2, marginBytes: 0 });
    const progress: number[] = [];
    const r = await pool.ensure(
      [...refs(), ...refs()],
      { baseUrl: fx.server.url },
      { onProgress: (d) => progress.push(d) },
    );
    expect(r).toMatchObject({ downloaded: 6, reused: 0 });
    expect(fx.server.requests).toHaveLength(6);
    expect(fx.server.maxConcurrent()).toBe(2);
    expect(progress.at(-1)).toBe(blobs.reduce((n, b) => n + b.size, 0));
    for (const b of blobs) {
      expect((await readFile(pool.pathOf(b.sha256))).equals(b.data)).toBe(true);
      expect((await stat(pool.pathOf(b.sha256))).mode & 0o777).toBe(0o440);
    }
    const again = await pool.ensure(refs(), { baseUrl: fx.server.url });
    expect(again).toMatchObject({ downloaded: 0, reused: 6, bytesFetched: 0 });
    expect(fx.server.requests).toHaveLength(6);
  });

  it('stops the other downloads on the first failure and reports it', async () => {
    const pool = new BlobPool({ cacheDir: fx.dir, concurrency: 3, marginBytes: 0 });
    const bad = { sha256: 'f'.repeat(64), size: 10 };
    const err = await pool.ensure([bad, ...refs()], { baseUrl: fx.server.url }).catch((e: unknown) => e);
    expect((err as OutpostError).code).toBe('FETCH_HTTP_STATUS');
    expect(existsSync(pool.pathOf(bad.sha256))).toBe(false);
  });

  it('refuses to start without room for the downloads plus the margin', async () => {
    const pool = new BlobPool({ cacheDir: fx.dir, marginBytes: Number.MAX_SAFE_INTEGER / 2 });
    const err = await pool.ensure(refs(), { baseUrl: fx.server.url }).catch((e: unknown) => e);
    expect((err as OutpostError).code).toBe('FETCH_NO_SPACE');
    expect((err as OutpostError).details).toMatchObject({ needed: blobs.reduce((n, b) => n + b.size, 0) });
    expect(fx.server.requests).toHaveLength(0);
  });

  it('gc deletes blobs nothing links to', async () => {
    const pool = new BlobPool({ cacheDir: fx.dir, marginBytes: 0 });
    await pool.ensure(refs(), { baseUrl: fx.server.url });
    const { link } = await import('node:fs/promises');
    await link(pool.pathOf(blobs[0].sha256), join(fx.dir, '..', `${blobs[0].sha256}-user-${process.pid}`));
    try {
      expect((await pool.gc()).blobs).toBe(5);
      expect(existsSync(pool.pathOf(blobs[0].sha256))).toBe(true);
    } finally {
      await rm(join(fx.dir, '..', `${blobs[0].sha256}-user-${process.pid}`), { force: true });
    }
  });
});

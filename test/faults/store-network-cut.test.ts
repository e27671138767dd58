import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../agent/store/index.js';
import { startBlobServer, type BlobServer } from '../helpers/blob-server.js';
import { contentOf, publishedFiles, versionProblem } from './store-fixture.js';

/** The connection cut again and again while a version installs: it resumes every time. */
const CHUNK = 64 * 1024;
let server: BlobServer;
let dir: string;

beforeAll(async () => {
  server = await startBlobServer();
  dir = await mkdtemp(join(tmpdir(), 'outpost-cut-'));
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('connection cut mid-file during an install', () => {
  it('resumes each file from its offset and installs the version', async () => {
    const content = contentOf(1);
    for (const data of content.values()) server.add(data);
    server.misbehave({ cutAfter: 20_000, pieceSize: 4096 });
    const store = await openStore({ dir, marginBytes: 0, backoffMs: 1, retries: 3 });
    const files = publishedFiles(1);
    const r = await store.installVersion({ id: 'acme/detector', version: 1, files, source: { baseUrl: server.url } });
    const total = files.reduce((n, f) => n + f.size, 0);
    expect(r.downloaded).toBe(files.length);
    // Every file needed several connections, yet little was fetched twice.
    expect(server.requests.length).toBeGreaterThanOrEqual(files.length * 2);
    expect(server.requests.filter((q) => q.status === 206).length).toBeGreaterThan(files.length);
    expect(r.bytesFetched - total).toBeLessThan(CHUNK);
    expect(await versionProblem(join(dir, 'acme/detector/current'), 1)).toBeNull();
  });
});

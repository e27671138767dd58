import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../agent/store/index.js';
import { useBlobFixture } from '../helpers/blob-fixture.js';
import { publish, versionContent } from '../helpers/blob-server.js';

const ID = 'acme/detector';
const fx = useBlobFixture('outpost-store-once-');
let store: Store;

beforeEach(async () => {
  store = await openStore({ dir: fx.dir, keep: 3, backoffMs: 1, marginBytes: 0 });
});

/** Every file of versions/<v> holds exactly the published bytes. */
async function expectExact(version: number, content: Map<string, Buffer>): Promise<void> {
  for (const [path, data] of content) {
    expect((await readFile(join(fx.dir, ID, 'versions', String(version), path))).equals(data)).toBe(true);
  }
}

describe('store: each byte is verified once per install (docs/store.md, Cost of an install)', () => {
  it('does not hash again a blob it hashed while downloading it in the same install', async () => {
    const content = versionContent(1);
    const r = await store.installVersion({
      id: ID,
      version: 1,
      files: publish(fx.server, content),
      source: { baseUrl: fx.server.url },
    });
    expect(r.downloaded).toBe(content.size);
    expect(r.rehashed).toBe(0);
    await expectExact(1, content);
  });

  it('hashes again a blob reused from the cache of an earlier install', async () => {
    await store.installVersion({
      id: ID,
      version: 1,
      files: publish(fx.server, versionContent(1)),
      source: { baseUrl: fx.server.url },
    });
    const content = versionContent(2);
    const r = await store.installVersion({
      id: ID,
      version: 2,
      files: publish(fx.server, content),
      source: { baseUrl: fx.server.url },
    });
    // shared.bin is the one file both versions list: reused, so checked again; the others are new.
    expect(r.reused).toBe(1);
    expect(r.downloaded).toBe(content.size - 1);
    expect(r.rehashed).toBe(1);
    await expectExact(2, content);
  });
});

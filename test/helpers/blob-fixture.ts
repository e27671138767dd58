import { afterAll, beforeAll, beforeEach } from 'vitest';
import { startBlobServer, type BlobServer } from './blob-server.js';
import { useTempDir } from './temp-dir.js';

export interface BlobFixture {
  /** One blob server for the whole file, well-behaved and with no recorded requests at each test's start. */
  readonly server: BlobServer;
  /** A fresh folder for each test. */
  readonly dir: string;
}

/**
 * The set-up of the downloader and store tests: a real blob server on port 0 shared by the file
 * (blobs added by one test stay; misbehaviour and the request log do not) and a temp folder per
 * test. Call at the top of the file; the hooks run before the caller's own beforeEach.
 */
export function useBlobFixture(prefix: string): BlobFixture {
  let server: BlobServer | undefined;
  beforeAll(async () => {
    server = await startBlobServer();
  });
  afterAll(async () => {
    await server?.close();
  });
  const tmp = useTempDir(prefix);
  beforeEach(() => {
    server!.misbehave({});
    server!.requests.length = 0;
  });
  return {
    get server(): BlobServer {
      if (!server) throw new Error('useBlobFixture: the server exists inside hooks and tests only');
      return server;
    },
    get dir(): string {
      return tmp.dir;
    },
  };
}

import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * s3rver (npm, a devDependency): a real HTTP server speaking the S3 REST API with SigV4
 * signature checks, storing objects in a folder. It is a fake S3 for tests, not a production
 * store: its writes are not atomic, it has no AbortMultipartUpload or ListMultipartUploads, and
 * it checks no part sizes. AWS S3, MinIO and Ceph RGW are not exercised here (docs/scale.md).
 *
 * Started in the test's process on 127.0.0.1 port 0, with the buckets it is given; `stop()`
 * drops the keep-alive connections the SDK holds, then closes.
 */
export interface S3Server {
  /** http://127.0.0.1:PORT, for --s3-endpoint. */
  readonly url: string;
  readonly bucket: string;
  /** s3rver's one account. */
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** The same, as the environment the SDK's default chain reads (for `cloud start` children). */
  readonly env: Record<string, string>;
  /** Requests received: method, path with query, and the Range header when there is one. */
  readonly requests: string[];
  /** The keys under `prefix` in the bucket, listed through the S3 API. */
  keys(prefix?: string): Promise<string[]>;
  stop(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer: http.Server;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

const require = createRequire(import.meta.url);

export async function startS3rver(dir: string, bucket = 'outpost-blobs'): Promise<S3Server> {
  const S3rver = require('s3rver') as S3rverClass;
  const directory = join(dir, 's3rver');
  await mkdir(directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const requests: string[] = [];
  server.httpServer.prependListener('request', (req: http.IncomingMessage) => {
    requests.push(`${req.method} ${req.url}${req.headers.range ? ` ${req.headers.range}` : ''}`);
  });
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  let stopped = false;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    bucket,
    credentials,
    env: { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey },
    requests,
    async keys(prefix = '') {
      const { S3Client, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
      const client = new S3Client({ endpoint: url, region: 'us-east-1', forcePathStyle: true, credentials });
      try {
        const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
        return (r.Contents ?? []).map((o) => o.Key ?? '').sort();
      } finally {
        client.destroy();
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      server.httpServer.closeAllConnections();
      await server.close();
    },
  };
}

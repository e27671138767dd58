import { OutpostError } from '../../protocol/errors/index.js';
import { SHA256_HEX, serveBlob, type BlobStore } from '../artifacts/index.js';
import type { Principal } from '../auth/index.js';
import { canReadBlob, recordUpload, unreferencedUploads } from '../catalog/access.js';
import type { Db } from '../db/open.js';
import { DEFAULT_CLOUD_LIMITS, type CloudLimits } from '../limits.js';
import type { Route } from './router.js';

/** Blobs larger than this are refused before a byte is stored. */
export const MAX_BLOB_SIZE = 64 * 1024 ** 3;

function parseSha(value: string): string {
  if (!SHA256_HEX.test(value))
    throw new OutpostError('BAD_REQUEST', `"${value}" is not a sha256 (64 lowercase hex characters)`, {
      key: 'sha256',
      value,
    });
  return value;
}

/** The same answer as an absent blob: whether another owner's private blob exists is not revealed. */
function notFound(sha: string): OutpostError {
  return new OutpostError(
    'BLOB_NOT_FOUND',
    `no blob ${sha} is stored that you may read; upload it with PUT /v1/blobs/${sha}`,
    { sha256: sha },
  );
}

/**
 * Refuses an upload before a byte is stored when the user's unreferenced uploads would pass the
 * quota, or when the blob filesystem would keep less than its reserve. The admin is exempt from
 * the quota (it is the operator), not from the free-space check.
 */
async function admitUpload(
  db: Db,
  store: BlobStore,
  p: Principal,
  size: number,
  limits: CloudLimits['uploads'],
): Promise<void> {
  if (p.kind === 'user') {
    const held = unreferencedUploads(db, p.subject);
    if (held.count + 1 > limits.maxUnreferencedCount || held.bytes + size > limits.maxUnreferencedBytes) {
      throw new OutpostError(
        'BLOB_QUOTA_EXCEEDED',
        `user "${p.subject}" holds ${held.count} uploaded blobs (${held.bytes} bytes) that no version lists; the quota is ${limits.maxUnreferencedCount} blobs and ${limits.maxUnreferencedBytes} bytes. Publish the versions that use them first`,
        { ...held, size, maxCount: limits.maxUnreferencedCount, maxBytes: limits.maxUnreferencedBytes },
      );
    }
  }
  // A bucket has no free space to keep (null); a folder does.
  const free = await store.freeBytes();
  if (free !== null && free - size < limits.minFreeBytes) {
    throw new OutpostError(
      'BLOB_NO_SPACE',
      `the blob store has ${free} bytes free; an upload of ${size} would leave less than the reserve of ${limits.minFreeBytes}`,
      { free, size, reserve: limits.minFreeBytes },
    );
  }
}

/**
 * `HEAD|GET|PUT /v1/blobs/:sha256`. Reads are least-privilege (cloud-broker/catalog/access.ts):
 * a blob is served only to a principal that may see a version listing it, or that uploaded it.
 */
export function blobRoutes(
  db: Db,
  store: BlobStore,
  limits: CloudLimits['uploads'] = DEFAULT_CLOUD_LIMITS.uploads,
): Route[] {
  const read: Route['handler'] = async ({ req, res, params, principal }) => {
    const sha = parseSha(params.sha256);
    if (!canReadBlob(db, principal!, sha)) throw notFound(sha);
    await serveBlob(req, res, store, sha);
  };
  return [
    { method: 'GET', path: '/v1/blobs/:sha256', access: 'any', handler: read },
    { method: 'HEAD', path: '/v1/blobs/:sha256', access: 'any', handler: read },
    {
      method: 'PUT',
      path: '/v1/blobs/:sha256',
      access: 'write',
      handler: async ({ req, params, principal, log }) => {
        const sha = parseSha(params.sha256);
        const header = req.headers['content-length'];
        if (header === undefined)
          throw new OutpostError(
            'HTTP_LENGTH_REQUIRED',
            'PUT /v1/blobs needs a Content-Length header equal to the file size',
          );
        const size = Number(header);
        if (!Number.isSafeInteger(size) || size < 0 || size > MAX_BLOB_SIZE) {
          throw new OutpostError('BAD_REQUEST', `Content-Length ${header} is not a size from 0 to ${MAX_BLOB_SIZE}`, {
            key: 'content-length',
            value: header,
          });
        }
        await admitUpload(db, store, principal!, size, limits);
        const result = await store.put(sha, size, req);
        // The bytes were hashed on the way in: the uploader provably holds them, so it may read
        // and reference them from now on (even if someone else uploaded them first).
        recordUpload(db, principal!, sha, size);
        if (result.created) log.info({ sha256: sha, size }, 'blob stored');
        return { status: result.created ? 201 : 200, body: { sha256: result.sha256, size: result.size } };
      },
    },
  ];
}

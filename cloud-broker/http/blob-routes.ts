import { OutpostError } from '../../protocol/errors/index.js';
import { SHA256_HEX, serveBlob, type BlobStore } from '../artifacts/index.js';
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

/** `HEAD|GET|PUT /v1/blobs/:sha256`. */
export function blobRoutes(store: BlobStore): Route[] {
  const read: Route['handler'] = async ({ req, res, params }) => {
    await serveBlob(req, res, store, parseSha(params.sha256));
  };
  return [
    { method: 'GET', path: '/v1/blobs/:sha256', access: 'any', handler: read },
    { method: 'HEAD', path: '/v1/blobs/:sha256', access: 'any', handler: read },
    {
      method: 'PUT',
      path: '/v1/blobs/:sha256',
      access: 'write',
      handler: async ({ req, params, log }) => {
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
        const result = await store.put(sha, size, req);
        if (result.created) log.info({ sha256: sha, size }, 'blob stored');
        return { status: result.created ? 201 : 200, body: { sha256: result.sha256, size: result.size } };
      },
    },
  ];
}

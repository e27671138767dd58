import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { OutpostError } from '../../protocol/errors/index.js';
import { blobNotFound, type BlobStore } from './blob-store.js';
import { decideRange } from './range.js';

/**
 * Answers HEAD/GET of one blob with Range support, streaming from the store (a file, or S3's
 * GetObject with the same Range), so memory stays flat for any size. Blobs never change, so the sha256 is a strong ETag and caches may keep them forever.
 */
export async function serveBlob(
  req: IncomingMessage,
  res: ServerResponse,
  store: BlobStore,
  sha256: string,
): Promise<void> {
  const st = await store.stat(sha256);
  if (!st) throw blobNotFound(sha256);
  const etag = `"${sha256}"`;
  const header = (name: string): string | undefined => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const decision = decideRange(header('range'), header('if-range'), st.size, etag);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', etag);
  res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
  if (decision.kind === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${st.size}`);
    throw new OutpostError(
      'HTTP_RANGE_NOT_SATISFIABLE',
      `Range "${header('range')}" is outside the blob of ${st.size} bytes or malformed; ask for one range within it`,
      { range: header('range'), size: st.size },
    );
  }
  const start = decision.kind === 'partial' ? decision.start : 0;
  const end = decision.kind === 'partial' ? decision.end : st.size - 1;
  // The source is opened before the status line is written, so a store that fails now (S3
  // down: BLOB_STORE_UNAVAILABLE) or lost the blob still gets a clean coded answer.
  const body = req.method === 'HEAD' || st.size === 0 ? null : await store.read(sha256, start, end);
  res.statusCode = decision.kind === 'partial' ? 206 : 200;
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', String(end - start + 1));
  if (decision.kind === 'partial') res.setHeader('Content-Range', `bytes ${start}-${end}/${st.size}`);
  if (!body) {
    res.end();
    return;
  }
  // A client that goes away mid-download rejects the pipeline, which destroys the source (for
  // S3 that closes its socket). That is an agent retrying, cut off or stopped, not a fault: it
  // resumes with a Range, so it ends the answer quietly. Which side failed first decides: the
  // response closing before it finished, or the source erroring (disk, S3), which stays an error.
  let first: 'client' | 'source' | null = null;
  res.once('close', () => {
    if (!res.writableFinished) first ??= 'client';
  });
  body.once('error', () => {
    first ??= 'source';
  });
  try {
    await pipeline(body, res);
  } catch (err) {
    if (first !== 'client') throw err;
  }
}

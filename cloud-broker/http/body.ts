import type { IncomingMessage } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';

export const JSON_BODY_LIMIT = 1024 * 1024;

/**
 * Reads a JSON object body of at most `limit` bytes. A larger body is refused as soon as the
 * header or the bytes show it, without buffering it; the stream is only paused (not destroyed)
 * so that the server can still deliver the 413 answer.
 */
export function readJsonBody(req: IncomingMessage, limit = JSON_BODY_LIMIT): Promise<Record<string, unknown>> {
  const tooLarge = (): OutpostError =>
    new OutpostError(
      'HTTP_BODY_TOO_LARGE',
      `the JSON body is larger than ${limit} bytes; files go to PUT /v1/blobs, not into JSON`,
      { limit },
    );
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      try {
        resolve(parseObject(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(err);
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new OutpostError('BAD_REQUEST', `the request body could not be read: ${err.message}`));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function parseObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new OutpostError(
      'HTTP_BODY_INVALID_JSON',
      `the request body is not valid JSON (${(err as Error).message}); send one JSON object`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new OutpostError('HTTP_BODY_INVALID_JSON', 'the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

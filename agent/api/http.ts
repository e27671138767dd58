import type { IncomingMessage, ServerResponse } from 'node:http';
import { OutpostError, toOutpostError, type ErrorBody } from '../../protocol/errors/index.js';

/**
 * Small helpers every route uses: error answers, JSON answers, and bounded body reading. The
 * error body is Outpost's `{code, message, details}` plus KServe's `error` field (the same
 * message), so both Outpost's client and KServe/Triton clients understand it.
 */
export interface ErrorAnswer extends ErrorBody {
  error: string;
}

export function errorBody(err: OutpostError): ErrorAnswer {
  return { ...err.toJSON(), error: err.message };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(body.length), ...headers });
  res.end(body);
}

export function sendBytes(
  res: ServerResponse,
  status: number,
  body: Uint8Array,
  headers: Record<string, string>,
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Length': String(body.byteLength), ...headers });
  res.end(body);
}

/**
 * Answers with several buffers as one body, without joining them: cork, write each, uncork, so
 * the headers and every part leave in one writev (the parts are tensors' own memory).
 */
export function sendParts(
  res: ServerResponse,
  status: number,
  parts: readonly Uint8Array[],
  byteLength: number,
  headers: Record<string, string>,
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Length': String(byteLength), ...headers });
  res.cork();
  for (const p of parts) res.write(p);
  res.end();
  res.uncork();
}

/** Answers with the error's catalog status; returns that status and the code (for metrics). */
export function sendError(res: ServerResponse, err: unknown, headers: Record<string, string> = {}): OutpostError {
  const e = toOutpostError(err);
  sendJson(res, e.status, errorBody(e), headers);
  return e;
}

/** Header value as one string (Node joins repeated headers for most names, not all). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The media type of Content-Type, lower-cased, without parameters. */
export function mediaType(req: IncomingMessage): string | undefined {
  return mediaTypeOf(header(req, 'content-type'));
}

/** The media type of a raw Content-Type value. */
export function mediaTypeOf(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
}

/**
 * Reads the whole body, refusing more than `max` bytes: early from Content-Length, otherwise as
 * soon as the streamed bytes cross the limit. A client that goes away rejects with `aborted`,
 * which routes treat as "nobody to answer".
 */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = header(req, 'content-length');
  if (declared !== undefined && Number(declared) > max) {
    return Promise.reject(tooLarge(Number(declared), max));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null, value?: Buffer) => {
      if (done) return;
      done = true;
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > max) {
        // Stop buffering; the route answers 413 and the server closes the connection.
        req.pause();
        finish(tooLarge(size, max));
      } else chunks.push(c);
    };
    const onEnd = () => finish(null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const onError = (e: Error) => finish(new ClientGone(e.message));
    const onClose = () => finish(new ClientGone('the client closed the connection before sending the whole body'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

export function tooLarge(size: number, max: number): OutpostError {
  return new OutpostError(
    'API_BODY_TOO_LARGE',
    `the request body (${size} bytes or more) is larger than the limit of ${max} bytes (api.maxBodyBytes)`,
    { limit: max },
  );
}

/** The client went away: there is nobody to answer, and it is not the agent's error. */
export class ClientGone extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientGone';
  }
}

/** Splits `/a/b%2Fc?x=1` into decoded segments and the query; bad escapes are a 400. */
export function splitUrl(url: string): { segments: string[]; query: URLSearchParams } {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const segments = path
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw new OutpostError('BAD_REQUEST', `the path segment "${s.slice(0, 80)}" has an invalid %-escape`, {
          segment: s.slice(0, 80),
        });
      }
    });
  return { segments, query };
}

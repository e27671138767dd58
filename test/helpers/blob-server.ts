import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP server on port 0 that serves blobs like the cloud does (`GET /v1/blobs/<sha256>`,
 * ETag = quoted sha256, Range and If-Range) and misbehaves on demand, for the downloader's tests.
 */
export interface Misbehavior {
  /** Destroy the connection after sending this many body bytes (per response). */
  cutAfter?: number;
  /** Only cut the first `cutTimes` responses (default: every response). */
  cutTimes?: number;
  /** Answer range requests with a full 200. */
  ignoreRange?: boolean;
  /** Append these bytes after the blob (Content-Length includes them unless `chunked`). */
  extra?: Buffer;
  /** XOR 0xff into the byte at this offset of the blob. */
  flipByteAt?: number;
  /** Serve only the first N bytes of the blob. */
  truncateTo?: number;
  /** Announce this Content-Length whatever is sent. */
  contentLength?: number;
  /** Send no Content-Length (chunked transfer encoding). */
  chunked?: boolean;
  /** Answer with this status and no body. */
  status?: number;
  /** Send the body in pieces of this size with `delayMs` between them. */
  pieceSize?: number;
  delayMs?: number;
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
}

export interface RequestRecord {
  sha256: string;
  range: string | undefined;
  ifRange: string | undefined;
  status: number;
  bodyBytes: number;
  /** The Authorization header, if the client sent one. */
  authorization: string | undefined;
}

export interface BlobServer {
  url: string;
  /** `<url>/v1/blobs/<sha256>` */
  blobUrl(sha256: string): string;
  add(data: Buffer): string;
  misbehave(m: Misbehavior): void;
  requests: RequestRecord[];
  /** Body bytes written to sockets so far. */
  bytesServed(): number;
  /** Most responses that were streaming at the same time. */
  maxConcurrent(): number;
  close(): Promise<void>;
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function startBlobServer(): Promise<BlobServer> {
  const blobs = new Map<string, Buffer>();
  const requests: RequestRecord[] = [];
  let mis: Misbehavior = {};
  let cuts = 0;
  let served = 0;
  let active = 0;
  let maxActive = 0;

  const server = http.createServer((req, res) => {
    const m = /^\/v1\/blobs\/([0-9a-f]{64})$/.exec(req.url ?? '');
    const rec: RequestRecord = {
      sha256: m?.[1] ?? '',
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      status: 0,
      bodyBytes: 0,
      authorization: req.headers.authorization,
    };
    requests.push(rec);
    const answer = (status: number): void => {
      rec.status = status;
      res.writeHead(status).end();
    };
    if (mis.token !== undefined && req.headers.authorization !== `Bearer ${mis.token}`) return answer(401);
    if (mis.status !== undefined) return answer(mis.status);
    const blob = m ? blobs.get(m[1]) : undefined;
    if (!blob) return answer(404);

    let data = Buffer.from(blob);
    if (mis.flipByteAt !== undefined && mis.flipByteAt < data.length) data[mis.flipByteAt] ^= 0xff;
    if (mis.truncateTo !== undefined) data = data.subarray(0, mis.truncateTo);
    if (mis.extra) data = Buffer.concat([data, mis.extra]);

    const etag = `"${m![1]}"`;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const rangeOk = range && !mis.ignoreRange && (rec.ifRange === undefined || rec.ifRange === etag);
    let status = 200;
    let body = data;
    const headers: http.OutgoingHttpHeaders = {
      etag,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
    };
    if (rangeOk) {
      const start = Number(range[1]);
      if (start >= data.length) return answer(416);
      status = 206;
      body = data.subarray(start);
      headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    if (!mis.chunked) headers['content-length'] = mis.contentLength ?? body.length;
    rec.status = status;
    res.writeHead(status, headers);
    active++;
    maxActive = Math.max(maxActive, active);
    // 'finish' (all bytes handed to the kernel) comes before the client can ask again; 'close' covers cuts.
    let counted = true;
    const release = (): void => {
      if (counted) active--;
      counted = false;
    };
    res.once('finish', release);
    res.once('close', release);

    // Only a real mid-body cut: a "cut" after the whole body would just close a keep-alive socket.
    const cut =
      mis.cutAfter !== undefined && mis.cutAfter < body.length && (mis.cutTimes === undefined || cuts < mis.cutTimes);
    if (cut) {
      cuts++;
      body = body.subarray(0, mis.cutAfter);
    }
    const piece = mis.pieceSize ?? body.length;
    let off = 0;
    const next = (): void => {
      if (res.destroyed) return;
      if (off >= body.length) {
        if (cut) res.socket?.destroy();
        else res.end();
        return;
      }
      const part = body.subarray(off, off + Math.max(1, piece));
      off += part.length;
      rec.bodyBytes += part.length;
      served += part.length;
      // The last piece ends the response at once, so the server is done when the client is.
      if (off >= body.length && !cut) {
        res.end(part);
        return;
      }
      res.write(part, () => {
        if (mis.delayMs && off < body.length) setTimeout(next, mis.delayMs);
        else next();
      });
    };
    next();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    blobUrl: (sha) => `${url}/v1/blobs/${sha}`,
    add(data) {
      const sha = sha256Hex(data);
      blobs.set(sha, data);
      return sha;
    },
    misbehave(next) {
      mis = next;
      cuts = 0;
    },
    requests,
    bytesServed: () => served,
    maxConcurrent: () => maxActive,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Deterministic content for version `version` of a test model: the same bytes in every process
 * (the kill -9 test's child and parent agree on them). File `shared.bin` is the same in every
 * version, so reuse across versions can be observed.
 */
export function versionContent(version: number, nFiles = 4, fileSize = 64 * 1024): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const fill = (seed: string, size: number): Buffer => {
    const parts: Buffer[] = [];
    for (let i = 0, n = 0; n < size; i++, n += 32) parts.push(createHash('sha256').update(`${seed}:${i}`).digest());
    return Buffer.concat(parts).subarray(0, size);
  };
  out.set('shared.bin', fill('shared', fileSize));
  for (let i = 0; i < nFiles; i++)
    out.set(`${i % 2 ? 'sub/dir/' : ''}file-${i}.bin`, fill(`v${version}:f${i}`, fileSize + version + i));
  return out;
}

/** Adds the files to the server and returns the metadata list the store installs. */
export function publish(
  server: BlobServer,
  content: Map<string, Buffer>,
): { path: string; sha256: string; size: number }[] {
  return [...content].map(([path, data]) => ({ path, sha256: server.add(data), size: data.length }));
}

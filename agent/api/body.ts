import type { IncomingMessage, ServerResponse } from 'node:http';
import { ClientGone, header, readBody, tooLarge } from './http.js';

/**
 * Request bodies that carry tensors, received so that the tensors can be views of them.
 *
 * Why not readBody + Buffer.concat: a 588 KiB tensor arrives in ~10 socket reads; concatenating
 * them and then copying each tensor out of the concatenation into its own typed array were two
 * copies and two large allocations per request, and the allocations were most of the agent's
 * GC time (docs/performance.md). Here the body is written once, read by read, into one buffer
 * sized from Content-Length, placed so that the first byte after the JSON header is 8-byte
 * aligned; a Float32Array (or BigInt64Array) view of a tensor then needs no copy at all.
 *
 * Buffers come from a small pool and go back only when the response is closed AND the route is
 * done with the tensors (both, because an inference can still be reading its input after the
 * client hung up). The pool keeps a bounded number of bytes; anything above is left to the GC.
 */
export interface BodyLease {
  bytes: Uint8Array;
  /** The route is done with every view of `bytes`. Idempotent. */
  release(): void;
}

const MIN_CLASS = 64 * 1024;

/**
 * The pool keeps at most `maxRetainedBytes`, and `perClass` buffers of one size: enough for every
 * request in flight at the bench's 16 clients (with 8, half of the returns were dropped and
 * reallocated, and those fresh 256 KiB buffers were most of the agent's GC on the conv net).
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private retained = 0;

  constructor(
    private readonly maxRetainedBytes = 32 * 1024 * 1024,
    private readonly perClass = 64,
  ) {}

  /** A buffer of at least `size` bytes (a power-of-two class, so reuse works across sizes). */
  take(size: number): ArrayBuffer {
    const cls = sizeClass(size);
    const list = this.free.get(cls);
    const hit = list?.pop();
    if (hit) {
      this.retained -= cls;
      return hit;
    }
    // allocUnsafeSlow: not from Node's shared 8 KiB slab and not zero-filled (every byte that is
    // read is first written by the socket).
    const b = Buffer.allocUnsafeSlow(cls);
    return b.buffer as ArrayBuffer;
  }

  give(buf: ArrayBuffer): void {
    const cls = buf.byteLength;
    if (cls !== sizeClass(cls) || this.retained + cls > this.maxRetainedBytes) return;
    const list = this.free.get(cls) ?? [];
    if (list.length >= this.perClass) return;
    list.push(buf);
    this.free.set(cls, list);
    this.retained += cls;
  }

  get retainedBytes(): number {
    return this.retained;
  }
}

function sizeClass(n: number): number {
  let c = MIN_CLASS;
  while (c < n) c *= 2;
  return c;
}

/**
 * The life of one answer, whatever carries it: node:http's ServerResponse, or the fast lane's
 * own answer (agent/api/lane/). `closed` once the answer is written or the client is gone.
 */
export interface AnswerLife {
  readonly closed: boolean;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Lends `size` bytes of the pool for one request: they go back when the route has called
 * release() and the response is closed, whichever comes last.
 */
export function lend(pool: BufferPool, res: AnswerLife, size: number, pad = 0): BodyLease {
  const buf = pool.take(size + pad);
  let routeDone = false;
  let resClosed = res.closed;
  const giveBack = () => {
    if (routeDone && resClosed) pool.give(buf);
  };
  if (!resClosed)
    res.once('close', () => {
      resClosed = true;
      giveBack();
    });
  return {
    bytes: new Uint8Array(buf, pad, size),
    release() {
      if (routeDone) return;
      routeDone = true;
      giveBack();
    },
  };
}

/**
 * Reads the body of `req` into a pooled buffer, with byte `alignAt` of the body (the end of the
 * JSON header) at an 8-byte boundary. Bounded by `max` like readBody; a body without
 * Content-Length (chunked) falls back to readBody, and the parser then copies misaligned tensors.
 */
export function readAlignedBody(
  req: IncomingMessage,
  res: ServerResponse,
  max: number,
  pool: BufferPool,
  alignAt = 0,
): Promise<BodyLease> {
  const declared = header(req, 'content-length');
  if (declared === undefined || !/^\d{1,15}$/.test(declared.trim())) {
    return readBody(req, max).then((bytes) => ({ bytes, release() {} }));
  }
  const length = Number(declared);
  if (length > max) return Promise.reject(tooLarge(length, max));
  const lease = lend(pool, res, length, (8 - (alignAt % 8)) % 8);
  const { bytes } = lease;
  return new Promise((resolve, reject) => {
    let at = 0;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) {
        lease.release();
        reject(err);
      } else resolve(lease);
    };
    const onData = (c: Buffer) => {
      // Node's parser never delivers more than Content-Length; the check keeps the copy in bounds anyway.
      if (at + c.length > length) return finish(tooLarge(at + c.length, length));
      bytes.set(c, at);
      at += c.length;
    };
    const onEnd = () =>
      at === length ? finish(null) : finish(new ClientGone(`the body ended after ${at} of ${length} bytes`));
    const onError = (e: Error) => finish(new ClientGone(e.message));
    const onClose = () => finish(new ClientGone('the client closed the connection before sending the whole body'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

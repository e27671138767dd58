import { OutpostError } from '../../protocol/errors/index.js';

/**
 * One HTTP/1.1 answer, read chunk by chunk from a connection (agent/client/connection.ts).
 *
 * The body is framed by Content-Length (the agent's answers always are: every tensor answer
 * lands in one buffer of that size, with no joining), by chunked transfer coding, or by the end
 * of the connection. With Content-Length, the buffer is placed so that the byte after the
 * KServe JSON header (`Inference-Header-Content-Length`) is 8-byte aligned; the agent pads that
 * header to a multiple of 8, so the parsed output tensors are views of the buffer, not copies.
 * A caller may instead hand a Content-Length body to a BodySink of its own (`sinkFor`): the
 * infer answer's tensors then go straight into the app's output buffers (./output-targets.ts).
 *
 * A Content-Length body can also be read without any copy: `window()` is the memory where the
 * next body bytes belong, and the connection has the kernel read into it (`wrote(n)` says it did).
 *
 * Everything is bounded: the head (64 KiB), the body (`maxBody`), a chunk-size line (1 KiB).
 * Anything malformed throws API_BAD_RESPONSE, and the connection is then not reused.
 * A chunk given to push() is valid only during the call (the pool reads every connection into one
 * buffer): whatever the parser keeps, it copies.
 */
export interface ParsedAnswer {
  status: number;
  headers: Record<string, string>;
  /** Empty when a sink took the body. */
  body: Buffer;
}

/** Where a Content-Length body goes, piece by piece, in order. */
export interface BodySink {
  /** Memory for the next body bytes, never empty while any are due, never longer than what is due. */
  window(): Uint8Array;
  /** The first `n` bytes of the last window now hold the next body bytes. */
  wrote(n: number): void;
}

/** Picks a sink for an answer once its head is read (`length`: its Content-Length), or none. */
export type SinkFor = (status: number, headers: Record<string, string>, length: number) => BodySink | undefined;

/**
 * Windows smaller than this are read into the pool's shared buffer and copied, so that a tail of a
 * few bytes does not cost a read of its own.
 */
const MIN_DIRECT_WINDOW = 4096;
const EMPTY = Buffer.alloc(0);

/** The default sink: the answer's own aligned buffer. */
class BufferSink implements BodySink {
  at = 0;
  constructor(readonly body: Buffer) {}
  window(): Uint8Array {
    return this.body.subarray(this.at);
  }
  wrote(n: number): void {
    this.at += n;
  }
}

const MAX_HEAD = 64 * 1024;
const MAX_CHUNK_LINE = 1024;
const CRLF2 = Buffer.from('\r\n\r\n');

type Mode = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailer' | 'close' | 'done';

export class ResponseParser {
  private mode: Mode = 'head';
  private head: Buffer = EMPTY;
  private status = 0;
  private headers: Record<string, string> = {};
  private body: Buffer = EMPTY;
  private sink: BodySink | undefined;
  /** Body bytes still due (Content-Length framing). */
  private left = 0;
  private chunks: Buffer[] = [];
  private size = 0;
  private chunkLeft = 0;
  private line = '';
  private keepAlive = true;
  private trailing = false;

  constructor(
    private readonly maxBody: number,
    private readonly sinkFor?: SinkFor,
  ) {}

  /** True once the answer is complete, framed, and the connection may carry another request. */
  get reusable(): boolean {
    return this.mode === 'done' && this.keepAlive && !this.trailing;
  }

  /** Feeds bytes; returns the answer once it is complete. */
  push(chunk: Buffer): ParsedAnswer | undefined {
    let c = chunk;
    while (c.length > 0) {
      switch (this.mode) {
        case 'head':
          c = this.pushHead(c);
          break;
        case 'length': {
          const w = this.sink!.window();
          const n = Math.min(c.length, w.length);
          w.set(n === c.length ? c : c.subarray(0, n));
          this.advance(n);
          c = c.subarray(n);
          break;
        }
        case 'close':
          this.add(c);
          c = c.subarray(c.length);
          break;
        case 'done':
          // Bytes after a complete answer: the connection is out of step.
          this.trailing = true;
          c = c.subarray(c.length);
          break;
        default:
          c = this.pushChunked(c);
      }
    }
    return this.mode === 'done' ? this.answer() : undefined;
  }

  /**
   * Where the kernel may read the next bytes itself: a window of the body (the answer's buffer or
   * the app's output buffer), or undefined when bytes must go through push() (the head, chunked
   * framing, a window too small to be worth a read of its own).
   */
  window(): Uint8Array | undefined {
    if (this.mode !== 'length') return undefined;
    const w = this.sink!.window();
    return w.length >= MIN_DIRECT_WINDOW ? w : undefined;
  }

  /** `n` bytes were read into the last window(); returns the answer once it is complete. */
  wrote(n: number): ParsedAnswer | undefined {
    this.advance(n);
    return this.mode === 'done' ? this.answer() : undefined;
  }

  /** The connection ended: the answer, if the end is what framed it. */
  end(): ParsedAnswer | undefined {
    if (this.mode === 'close') {
      this.body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
      this.keepAlive = false;
      this.mode = 'done';
    }
    return this.mode === 'done' ? this.answer() : undefined;
  }

  private advance(n: number): void {
    this.sink!.wrote(n);
    this.left -= n;
    if (this.left === 0) this.mode = 'done';
  }

  private answer(): ParsedAnswer {
    return { status: this.status, headers: this.headers, body: this.body };
  }

  private pushHead(c: Buffer): Buffer {
    const from = Math.max(0, this.head.length - 3);
    const all = this.head.length === 0 ? c : Buffer.concat([this.head, c]);
    const i = all.indexOf(CRLF2, from);
    if (i === -1) {
      if (all.length > MAX_HEAD) throw bad(`its head is larger than ${MAX_HEAD} bytes`);
      this.head = Buffer.from(all);
      return c.subarray(c.length);
    }
    if (i > MAX_HEAD) throw bad(`its head is larger than ${MAX_HEAD} bytes`);
    this.head = EMPTY;
    this.parseHead(all.toString('latin1', 0, i));
    const rest = all.subarray(i + 4);
    // An interim answer (100 Continue) precedes the real one.
    if (this.status >= 100 && this.status < 200) {
      this.headers = {};
      return rest;
    }
    this.startBody();
    return rest;
  }

  private parseHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
    if (!m) throw bad(`its status line is not HTTP/1.x: ${JSON.stringify(lines[0]!.slice(0, 60))}`);
    this.status = Number(m[2]);
    if (m[1] === '0') this.keepAlive = false;
    const headers: Record<string, string> = {};
    for (let k = 1; k < lines.length; k++) {
      const line = lines[k]!;
      const colon = line.indexOf(':');
      // A line that starts with white space is an obsolete folded continuation: refused.
      if (colon <= 0 || line.charCodeAt(0) <= 32) throw bad(`header line ${JSON.stringify(line.slice(0, 60))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const prev = headers[name];
      headers[name] = prev === undefined ? value : `${prev}, ${value}`;
    }
    this.headers = headers;
  }

  private startBody(): void {
    const h = this.headers;
    if (
      h.connection
        ?.toLowerCase()
        .split(',')
        .some((t) => t.trim() === 'close')
    )
      this.keepAlive = false;
    if (this.status === 204 || this.status === 304) {
      this.fixed(0);
      return;
    }
    const te = h['transfer-encoding'];
    if (te !== undefined) {
      if (te.toLowerCase() !== 'chunked') throw bad(`Transfer-Encoding ${te.slice(0, 40)} is not chunked`);
      if (h['content-length'] !== undefined) throw bad('it has both Transfer-Encoding and Content-Length');
      this.mode = 'chunk-size';
      return;
    }
    const cl = h['content-length'];
    if (cl === undefined) {
      this.mode = 'close';
      this.keepAlive = false;
      return;
    }
    if (!/^\d{1,15}$/.test(cl)) throw bad(`Content-Length ${JSON.stringify(cl.slice(0, 40))} is not a byte count`);
    const length = Number(cl);
    if (length > this.maxBody) throw bad(`it announces ${length} bytes, more than ${this.maxBody}`);
    const hl = Number(h['inference-header-content-length'] ?? 0);
    this.fixed(length, Number.isSafeInteger(hl) && hl >= 0 ? (8 - (hl % 8)) % 8 : 0);
  }

  private fixed(length: number, pad = 0): void {
    this.left = length;
    this.mode = length === 0 ? 'done' : 'length';
    if (length === 0) return;
    this.sink = this.sinkFor?.(this.status, this.headers, length);
    if (this.sink) return;
    // allocUnsafe: every byte is written from the socket before anyone reads it; its slab and its
    // large allocations both start 8-byte aligned, so `pad` aligns the tensors.
    this.body = Buffer.allocUnsafe(length + pad).subarray(pad);
    this.sink = new BufferSink(this.body);
  }

  private add(c: Buffer): void {
    this.size += c.length;
    if (this.size > this.maxBody) throw bad(`the answer is larger than ${this.maxBody} bytes`);
    // A copy: the socket's chunk may be a view of memory Node reuses.
    this.chunks.push(Buffer.from(c));
  }

  private pushChunked(c: Buffer): Buffer {
    if (this.mode === 'chunk-data') {
      const n = Math.min(c.length, this.chunkLeft);
      this.add(c.subarray(0, n));
      this.chunkLeft -= n;
      if (this.chunkLeft === 0) this.mode = 'chunk-end';
      return c.subarray(n);
    }
    // chunk-size, chunk-end and trailer read lines.
    const nl = c.indexOf(10);
    const piece = c.toString('latin1', 0, nl === -1 ? c.length : nl + 1);
    this.line += piece;
    if (this.line.length > MAX_CHUNK_LINE) throw bad('a chunk line is too long');
    if (nl === -1) return c.subarray(c.length);
    const line = this.line.replace(/\r?\n$/, '');
    this.line = '';
    if (this.mode === 'chunk-end') {
      if (line !== '') throw bad('a chunk does not end with CRLF');
      this.mode = 'chunk-size';
    } else if (this.mode === 'chunk-size') {
      const m = /^([0-9a-fA-F]{1,12})(?:;.*)?$/.exec(line.trim());
      if (!m) throw bad(`chunk size ${JSON.stringify(line.slice(0, 40))}`);
      this.chunkLeft = Number.parseInt(m[1]!, 16);
      this.mode = this.chunkLeft === 0 ? 'trailer' : 'chunk-data';
    } else if (line === '') {
      this.body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
      this.mode = 'done';
    }
    return c.subarray(nl + 1);
  }
}

function bad(why: string): OutpostError {
  return new OutpostError('API_BAD_RESPONSE', `the agent's answer: ${why}`);
}

import { connect, type Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';
import { MAX_ANSWER_BYTES, type Answer } from '../net/http-answer.js';
import { ResponseParser, type SinkFor } from './response-parser.js';

/**
 * HTTP/1.1 requests to the agent over keep-alive Unix-socket connections, written and read
 * directly on `net.Socket`: the same KServe v2 HTTP on the wire as `http.request`, without its
 * per-request machinery.
 *
 * Why not node:http: with the agent on the same machine, Node's HTTP client was the largest
 * single cost of a round trip that the app pays (docs/performance.md: ~0.3-0.4 ms of a ~0.6 ms
 * shared-memory infer, measured A/B in one run). Here a request is one head string and its body
 * parts in one writev, and the answer lands in one buffer of Content-Length bytes.
 *
 * Invariants: a connection carries one request at a time (no pipelining), and goes back to the
 * idle list only when its answer was framed (Content-Length or chunked) and complete; anything
 * else destroys it. Idle connections are unreferenced (they never keep an app alive) and closed
 * before the agent's own keep-alive timeout, so a request rarely meets a connection the agent is
 * closing; when it does (the connection ends before one byte of the answer), the request is
 * sent once more on a new connection.
 */
export interface SendRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  parts?: readonly Uint8Array[];
  byteLength?: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Takes the answer's Content-Length body instead of its own buffer (see ResponseParser). */
  sink?: SinkFor;
}

/** Idle connections close after this, below the agent's default keep-alive timeout (5 s). */
const IDLE_MS = 4_000;
const MAX_IDLE = 64;

/**
 * Every connection of a pool reads into this one buffer (net's `onread`), and the parser copies
 * each read out before the callback returns. Why: by default every socket read allocates a new
 * 64 KiB Buffer, and with 512 KiB answers those were most of the client's garbage collection
 * (docs/performance.md, round 4). Reads of all sockets run one after another on the event loop,
 * so one buffer serves them all.
 *
 * Once an answer's head is read, the rest of a Content-Length body is read by the kernel straight
 * into where it belongs (the answer's buffer, or the app's output buffer): net's `onread.buffer`
 * as a function names the memory of each next read. Node asks for it right after the previous
 * read's callback, and a read never goes past the window it was given, so bytes land only inside
 * the answer's own body; the next exchange on the connection starts again with the shared buffer.
 */
const READ_BUFFER_BYTES = 256 * 1024;

/** Who gets a connection's bytes: the exchange in progress, or (idle) a handler that drops it. */
interface Reader {
  /** Bytes read into the shared buffer, valid during the call. */
  data(bytes: Buffer): void;
  /** Where the next read may go instead of the shared buffer. */
  window(): Uint8Array | undefined;
  /** `n` bytes were read into the last window. */
  wrote(n: number): void;
}

export class ConnectionPool {
  private readonly idle: Socket[] = [];
  private readonly timers = new Map<Socket, NodeJS.Timeout>();
  private readonly readers = new Map<Socket, Reader>();
  private readonly readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  private closed = false;

  constructor(readonly socketPath: string) {}

  async send(r: SendRequest): Promise<Answer> {
    const head = requestHead(r);
    const reused = this.idle.pop();
    if (reused) {
      this.unpark(reused);
      try {
        return await this.exchange(reused, head, r);
      } catch (err) {
        // The agent closed this idle connection while the request was on its way. It closes only
        // idle connections (its keep-alive timeout), so the request was never read: send it again
        // on a fresh connection. (If the agent died instead, the new connection says so.)
        if (!(err instanceof StaleConnection)) throw err;
      }
    }
    const fresh = await this.open(r);
    try {
      return await this.exchange(fresh, head, r);
    } catch (err) {
      if (err instanceof StaleConnection) throw unreachable(this.socketPath, err.message);
      throw err;
    }
  }

  /** Closes the idle connections; requests in flight finish. */
  close(): void {
    this.closed = true;
    for (const s of this.idle.splice(0)) {
      this.unpark(s);
      s.destroy();
    }
  }

  private open(r: SendRequest): Promise<Socket> {
    return new Promise((resolve, reject) => {
      if (r.signal?.aborted) return reject(abortError(r.signal));
      // Node asks for the first buffer inside connect(), before `s` is assigned.
      const conn: { s?: Socket } = {};
      const s = connect({
        path: this.socketPath,
        onread: {
          buffer: () => (conn.s && this.readers.get(conn.s)?.window()) || this.readBuffer,
          callback: (n: number, into: Uint8Array) => {
            const r = this.readers.get(s);
            if (into === this.readBuffer) r?.data(this.readBuffer.subarray(0, n));
            else r?.wrote(n);
            return true;
          },
        },
      });
      conn.s = s;
      const onError = (err: NodeJS.ErrnoException) => {
        r.signal?.removeEventListener('abort', onAbort);
        reject(unreachable(this.socketPath, whyUnreachable(err), err.code));
      };
      const onAbort = () => {
        s.destroy();
        reject(abortError(r.signal!));
      };
      r.signal?.addEventListener('abort', onAbort, { once: true });
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        r.signal?.removeEventListener('abort', onAbort);
        resolve(s);
      });
    });
  }

  /** One request and its answer on `s`; `s` is parked for reuse or destroyed. */
  private exchange(s: Socket, head: string, r: SendRequest): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const parser = new ResponseParser(MAX_ANSWER_BYTES, r.sink);
      let got = 0;
      let settled = false;
      const finish = (err: Error | null, answer?: Answer) => {
        if (settled) return;
        settled = true;
        this.readers.delete(s);
        s.off('end', onEnd).off('error', onError).off('close', onEnd).off('timeout', onTimeout);
        r.signal?.removeEventListener('abort', onAbort);
        if (r.timeoutMs > 0) s.setTimeout(0);
        if (err) {
          s.destroy();
          reject(err);
        } else {
          if (parser.reusable && !this.closed) this.park(s);
          else s.destroy();
          resolve(answer!);
        }
      };
      const settle = (done: ReturnType<ResponseParser['push']>) => {
        if (done) finish(null, { status: done.status, headers: done.headers as IncomingHttpHeaders, body: done.body });
      };
      const reader: Reader = {
        data: (chunk) => {
          got += chunk.length;
          try {
            settle(parser.push(chunk));
          } catch (err) {
            finish(err as Error);
          }
        },
        window: () => parser.window(),
        wrote: (n) => {
          got += n;
          try {
            settle(parser.wrote(n));
          } catch (err) {
            finish(err as Error);
          }
        },
      };
      const onEnd = () => {
        if (settled) return;
        const body = parser.end();
        if (body)
          return finish(null, { status: body.status, headers: body.headers as IncomingHttpHeaders, body: body.body });
        finish(
          got === 0
            ? new StaleConnection('the agent closed the connection before answering')
            : new OutpostError('API_BAD_RESPONSE', "the agent's answer was cut"),
        );
      };
      const onError = (err: NodeJS.ErrnoException) =>
        finish(
          got === 0 && (err.code === 'ECONNRESET' || err.code === 'EPIPE')
            ? new StaleConnection(err.message)
            : unreachable(this.socketPath, err.message, err.code),
        );
      const onTimeout = () =>
        finish(
          new OutpostError(
            'API_UNREACHABLE',
            `the agent at ${this.socketPath} did not answer ${r.method} ${r.path} within ${r.timeoutMs} ms`,
          ),
        );
      const onAbort = () => finish(abortError(r.signal!));
      if (r.signal?.aborted) return finish(abortError(r.signal));
      r.signal?.addEventListener('abort', onAbort, { once: true });
      this.readers.set(s, reader);
      s.on('end', onEnd).on('error', onError).on('close', onEnd);
      if (r.timeoutMs > 0) s.setTimeout(r.timeoutMs, onTimeout);
      s.ref();
      // The head and every part leave in one writev; tensors are never joined into one buffer.
      s.cork();
      s.write(head, 'latin1');
      for (const p of r.parts ?? []) s.write(p);
      s.uncork();
    });
  }

  private park(s: Socket): void {
    if (this.idle.length >= MAX_IDLE) return void s.destroy();
    s.unref();
    // An idle connection that the agent closes (or that errors) leaves the list at once.
    const drop = () => {
      const i = this.idle.indexOf(s);
      if (i !== -1) this.idle.splice(i, 1);
      this.unpark(s);
      s.destroy();
    };
    s.once('close', drop).once('error', drop).once('end', drop);
    // Bytes nobody asked for mean the connection is out of step: never reuse it.
    this.readers.set(s, { data: drop, window: () => undefined, wrote: drop });
    this.timers.set(s, setTimeout(drop, IDLE_MS).unref());
    this.idle.push(s);
  }

  private unpark(s: Socket): void {
    const t = this.timers.get(s);
    if (t) clearTimeout(t);
    this.timers.delete(s);
    this.readers.delete(s);
    s.removeAllListeners('close').removeAllListeners('error').removeAllListeners('end');
  }
}

/** A reused connection that ended before one byte of the answer: safe to send again. */
class StaleConnection extends Error {}

function requestHead(r: SendRequest): string {
  // Names, values and the path are the client's own or come from typed options; a CR, LF or
  // space where it does not belong would let a caller's string start another header or request.
  if (/[\s]/.test(r.path)) throw new OutpostError('USAGE', 'the request path contains white space');
  let head = `${r.method} ${r.path} HTTP/1.1\r\nHost: localhost\r\n`;
  for (const [k, v] of Object.entries(r.headers)) {
    if (/[\r\n]/.test(k + v))
      throw new OutpostError('USAGE', `the request header ${k.slice(0, 40)} contains a line break`);
    head += `${k}: ${v}\r\n`;
  }
  if (r.parts) head += `Content-Length: ${r.byteLength}\r\n`;
  return `${head}\r\n`;
}

export function whyUnreachable(err: NodeJS.ErrnoException): string {
  return err.code === 'ENOENT'
    ? 'no socket there (is the agent running?)'
    : err.code === 'ECONNREFUSED'
      ? 'nobody listens on it (is the agent running?)'
      : err.code === 'EACCES'
        ? "permission denied (is your user in the socket's group?)"
        : err.message;
}

export function unreachable(socket: string, why: string, errno?: string): OutpostError {
  return new OutpostError('API_UNREACHABLE', `cannot reach the agent at ${socket}: ${why}`, {
    socket,
    ...(errno ? { errno } : {}),
  });
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return Object.assign(new Error('The operation was aborted', { cause: reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

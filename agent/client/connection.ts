import { connect, type Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';
import { MAX_ANSWER_BYTES, type Answer } from '../net/http-answer.js';
import { ResponseParser, type ParsedAnswer, type SinkFor } from './response-parser.js';

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
 * So the shared buffer holds only heads, small bodies and chunked ones: 16 KiB. A larger one made
 * the first read of a tensor answer take up to its size of tensor bytes, which were then copied.
 */
const READ_BUFFER_BYTES = 16 * 1024;

/**
 * One connection and what it is doing: carrying `exchange`, or parked idle. Its listeners are
 * installed once, when it connects, and pass events to the exchange in progress; per request
 * there is one Exchange object and no listener to add or remove (they were a visible share of
 * the client's CPU per request, docs/performance.md round 5).
 */
interface Conn {
  s: Socket;
  exchange: Exchange | undefined;
  parked: boolean;
  /** The idle timer, created once and refreshed at every park. */
  idleTimer: NodeJS.Timeout | undefined;
}

export class ConnectionPool {
  private readonly idle: Conn[] = [];
  private readonly readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  /** True once close() ran: connections are no longer parked. */
  private closed = false;

  constructor(readonly socketPath: string) {}

  async send(r: SendRequest): Promise<Answer> {
    const head = requestHead(r);
    const reused = this.idle.pop();
    if (reused) {
      reused.parked = false;
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
    for (const c of this.idle.splice(0)) this.drop(c);
  }

  /** Parks `c` for reuse (its exchange is done), or destroys it when the pool is full or closed. */
  park(c: Conn): void {
    if (this.closed || this.idle.length >= MAX_IDLE) return void c.s.destroy();
    c.s.unref();
    c.parked = true;
    if (c.idleTimer) c.idleTimer.refresh();
    else c.idleTimer = setTimeout(() => c.parked && this.drop(c), IDLE_MS).unref();
    this.idle.push(c);
  }

  /** An idle connection that closed, errored, timed out or sent bytes nobody asked for: never reused. */
  private drop(c: Conn): void {
    c.parked = false;
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
    if (c.idleTimer) clearTimeout(c.idleTimer);
    c.s.destroy();
  }

  private open(r: SendRequest): Promise<Conn> {
    return new Promise((resolve, reject) => {
      if (r.signal?.aborted) return reject(abortError(r.signal));
      // Node asks for the first read buffer inside connect(), before `c` is assigned.
      let c: Conn | undefined;
      const s = connect({
        path: this.socketPath,
        onread: {
          buffer: () => c?.exchange?.parser.window() || this.readBuffer,
          callback: (n: number, into: Uint8Array) => {
            const ex = c!.exchange;
            if (!ex) this.drop(c!);
            else if (into === this.readBuffer) ex.data(this.readBuffer.subarray(0, n));
            else ex.wrote(n);
            return true;
          },
        },
      });
      c = { s, exchange: undefined, parked: false, idleTimer: undefined };
      const conn = c;
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
        s.on('end', () => (conn.exchange ? conn.exchange.ended() : this.drop(conn)));
        s.on('close', () => (conn.exchange ? conn.exchange.ended() : this.drop(conn)));
        s.on('error', (err: NodeJS.ErrnoException) => (conn.exchange ? conn.exchange.failed(err) : this.drop(conn)));
        s.on('timeout', () => conn.exchange?.timedOut());
        resolve(conn);
      });
    });
  }

  /** One request and its answer on `c`; `c` is parked for reuse or destroyed. */
  private exchange(c: Conn, head: string, r: SendRequest): Promise<Answer> {
    return new Promise((resolve, reject) => {
      if (r.signal?.aborted) {
        c.s.destroy();
        return reject(abortError(r.signal));
      }
      c.exchange = new Exchange(this, c, r, resolve, reject);
      if (r.timeoutMs > 0) c.s.setTimeout(r.timeoutMs);
      c.s.ref();
      // The head and every part leave in one writev; tensors are never joined into one buffer.
      c.s.cork();
      c.s.write(head, 'latin1');
      for (const p of r.parts ?? []) c.s.write(p);
      c.s.uncork();
    });
  }
}

/** One request in flight on a connection: where its answer's bytes and its connection's events go. */
class Exchange {
  readonly parser: ResponseParser;
  private got = 0;
  private settled = false;
  private readonly onAbort: (() => void) | undefined;

  constructor(
    private readonly pool: ConnectionPool,
    private readonly c: Conn,
    private readonly r: SendRequest,
    private readonly resolve: (a: Answer) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.parser = new ResponseParser(MAX_ANSWER_BYTES, r.sink);
    if (r.signal) {
      this.onAbort = () => this.finish(abortError(r.signal!));
      r.signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** Bytes read into the pool's shared buffer, valid during the call. */
  data(chunk: Buffer): void {
    this.got += chunk.length;
    try {
      this.settle(this.parser.push(chunk));
    } catch (err) {
      this.finish(err as Error);
    }
  }

  /** `n` bytes were read into the parser's last window. */
  wrote(n: number): void {
    this.got += n;
    try {
      this.settle(this.parser.wrote(n));
    } catch (err) {
      this.finish(err as Error);
    }
  }

  ended(): void {
    if (this.settled) return;
    const a = this.parser.end();
    if (a) {
      this.settle(a);
      return;
    }
    this.finish(
      this.got === 0
        ? new StaleConnection('the agent closed the connection before answering')
        : new OutpostError('API_BAD_RESPONSE', "the agent's answer was cut"),
    );
  }

  failed(err: NodeJS.ErrnoException): void {
    this.finish(
      this.got === 0 && (err.code === 'ECONNRESET' || err.code === 'EPIPE')
        ? new StaleConnection(err.message)
        : unreachable(this.pool.socketPath, err.message, err.code),
    );
  }

  timedOut(): void {
    this.finish(
      new OutpostError(
        'API_UNREACHABLE',
        `the agent at ${this.pool.socketPath} did not answer ${this.r.method} ${this.r.path} within ${this.r.timeoutMs} ms`,
      ),
    );
  }

  private settle(a: ParsedAnswer | undefined): void {
    if (a) this.finish(null, { status: a.status, headers: a.headers as IncomingHttpHeaders, body: a.body });
  }

  private finish(err: Error | null, answer?: Answer): void {
    if (this.settled) return;
    this.settled = true;
    const { c, r } = this;
    c.exchange = undefined;
    if (this.onAbort) r.signal!.removeEventListener('abort', this.onAbort);
    if (r.timeoutMs > 0) c.s.setTimeout(0);
    if (err) {
      c.s.destroy();
      this.reject(err);
    } else {
      if (this.parser.reusable) this.pool.park(c);
      else c.s.destroy();
      this.resolve(answer!);
    }
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

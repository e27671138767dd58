import type { Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { OutpostError } from '../../../protocol/errors/index.js';
import { lend, type AnswerLife, type BodyLease, type BufferPool } from '../body.js';
import { ClientGone, errorBody, tooLarge } from '../http.js';
import { writeAnswer, type LaneAnswer } from './answer.js';
import { Handoff } from './handoff.js';
import { ChunkedFramer, parseHead, type HeadLimits, type RequestHead } from './parse.js';

/**
 * One connection of the fast lane (agent/api/lane/server.ts), one request at a time, in order.
 *
 * Reads land in one buffer per connection (`rb`, from the pool) through net.Socket's `onread`,
 * so no read allocates. The hot route's body is read straight into its pooled, aligned buffer:
 * once the route asks for the body, the next reads target the rest of that buffer. Everything
 * else is handed, byte for byte, to node:http through a Handoff; its answer is forwarded before
 * the next request is parsed, so answers leave in request order.
 *
 * The read target is chosen only in `target()`, which Node calls right after each read callback;
 * the layout of `rb` (compaction) changes only there, so a read always lands where the last
 * target said, at `re`.
 */
export interface LaneHost {
  pool: BufferPool;
  http: HttpServer;
  limits: {
    maxBodyBytes: number;
    requestTimeoutMs: number;
    headersTimeoutMs: number;
    keepAliveTimeoutMs: number;
    maxConnections: number;
  };
  head: HeadLimits;
  /** The hot handler for this head, or undefined to hand the request to node:http. */
  hot(head: RequestHead): HotRoute | undefined;
  /** A refusal the lane answers itself (parse errors, timeouts): for metrics and logs. */
  refused(err: OutpostError): void;
  closing(): boolean;
}

export interface HotRequest {
  head: RequestHead;
  life: AnswerLife;
  /** The whole body in a pooled buffer with body byte `alignAt` 8-byte aligned. */
  readBody(max: number, alignAt: number): Promise<BodyLease>;
}

/** Resolves to the answer, or undefined when nobody is left to answer (the client went away). */
export type HotRoute = (req: HotRequest) => Promise<LaneAnswer | undefined>;

const READ_BUFFER = 64 * 1024;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

type State = 'head' | 'hot-wait' | 'hot-body' | 'hot-run' | 'pass-body' | 'pass-wait' | 'discard' | 'closed';

class Life implements AnswerLife {
  closed = false;
  private listeners: (() => void)[] = [];
  once(_event: 'close', listener: () => void): this {
    if (this.closed) listener();
    else this.listeners.push(listener);
    return this;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.listeners.splice(0)) l();
  }
}

export class LaneConnection {
  private state: State = 'head';
  private readonly rb: Buffer;
  private readonly rbArray: ArrayBuffer;
  private rs = 0;
  private re = 0;
  private paused = false;
  private peerEnded = false;
  private endAfter = false;
  /** ms since epoch after which the current wait times out; 0 = none. */
  private deadline = 0;
  private requestStarted = 0;
  private head: RequestHead | undefined;
  private life: Life | undefined;
  private body: { lease: BodyLease; at: number; view: Uint8Array | undefined } | undefined;
  private bodyWait: { resolve: (l: BodyLease) => void; reject: (e: Error) => void } | undefined;
  private bodyLeft = 0;
  private framer: ChunkedFramer | undefined;
  private handoff: Handoff | undefined;
  private passBlocked = false;
  private passAnswered = false;
  socket!: Socket;

  constructor(private readonly host: LaneHost) {
    this.rbArray = host.pool.take(READ_BUFFER);
    this.rb = Buffer.from(this.rbArray, 0, READ_BUFFER);
    this.idle();
  }

  /** `onread.buffer`: where the next read lands. */
  target(): Uint8Array {
    const b = this.body;
    if (this.state === 'hot-body' && b && this.rs === this.re) {
      b.view = b.lease.bytes.subarray(b.at);
      return b.view;
    }
    if (this.rs === this.re) this.rs = this.re = 0;
    else if (this.re === this.rb.length || (this.rs > 0 && this.rb.length - this.re < 16 * 1024)) {
      this.rb.copyWithin(0, this.rs, this.re);
      this.re -= this.rs;
      this.rs = 0;
    }
    // While a request is being served the socket keeps reading (see waitForAnswer), and pauses
    // once bytes arrive. The window it pauses with is the one its resume reads into, so it must
    // not be empty: a read into no room returns 0, which is end-of-file. A window that stops one
    // byte short of the end keeps room after any read.
    if (this.waiting() && this.re < this.rb.length - 1) return this.rb.subarray(this.re, this.rb.length - 1);
    return this.rb.subarray(this.re);
  }

  /** The current request is with its route or node:http; its bytes are all read. */
  private waiting(): boolean {
    return this.state === 'hot-wait' || this.state === 'hot-run' || this.state === 'pass-wait';
  }

  /** `onread.callback`: `n` bytes landed in `buf` (the last target). */
  onRead(n: number, buf: Uint8Array): boolean {
    const b = this.body;
    if (b && buf === b.view) {
      b.view = undefined;
      b.at += n;
      if (b.at === b.lease.bytes.byteLength) this.bodyDone();
    } else this.re += n;
    this.process();
    return !this.paused;
  }

  /** Waiting for the next request, with no byte of it yet. */
  idleNow(): boolean {
    return this.state === 'head' && this.rs === this.re;
  }

  /** Applies timeouts; called by the lane's sweep. */
  expire(now: number): void {
    if (this.deadline === 0 || now < this.deadline || this.state === 'closed') return;
    if (this.state === 'head' && this.rs === this.re) return void this.socket.destroy(); // idle keep-alive
    const err = new OutpostError(
      'API_REQUEST_TIMEOUT',
      `the request was not received within ${this.host.limits.requestTimeoutMs} ms (headers within ${this.host.limits.headersTimeoutMs} ms)`,
    );
    if (this.bodyWait) return void this.failBody(err);
    this.refuse(err);
  }

  onEnd(): void {
    this.peerEnded = true;
    if (this.handoff && (this.state === 'pass-body' || this.state === 'pass-wait')) this.handoff.push(null);
    if (this.bodyWait) this.failBody(new ClientGone('the client ended the connection before sending the whole body'));
    else if (this.state === 'head' || this.state === 'discard') this.process();
  }

  onClose(): void {
    this.state = 'closed';
    if (this.bodyWait) this.failBody(new ClientGone('the client closed the connection before sending the whole body'));
    this.life?.close();
    this.handoff?.destroy();
    this.host.pool.give(this.rbArray);
  }

  // --- the request loop ---------------------------------------------------------------------

  private process(): void {
    for (;;) {
      switch (this.state) {
        case 'head':
          if (!this.nextHead()) return;
          break;
        case 'pass-body':
          if (!this.forwardBody()) return;
          break;
        case 'discard': {
          const n = Math.min(this.bodyLeft, this.re - this.rs);
          this.rs += n;
          this.bodyLeft -= n;
          if (this.bodyLeft > 0) {
            this.setPaused(false);
            return;
          }
          this.requestDone();
          break;
        }
        case 'hot-body': {
          // Bytes that arrived in rb before the route asked for the body go first.
          const b = this.body!;
          const n = Math.min(b.lease.bytes.byteLength - b.at, this.re - this.rs);
          if (n > 0) {
            b.lease.bytes.set(this.rb.subarray(this.rs, this.rs + n), b.at);
            b.at += n;
            this.rs += n;
          }
          if (b.at < b.lease.bytes.byteLength) {
            this.setPaused(false);
            return;
          }
          this.bodyDone();
          break;
        }
        case 'closed':
          this.setPaused(true);
          return;
        default:
          this.waitForAnswer();
          return;
      }
    }
  }

  /** Parses the next head from rb and starts its request; false when more bytes are needed. */
  private nextHead(): boolean {
    if (this.rs === this.re) {
      if (this.peerEnded || this.endAfter) this.socket.destroySoon();
      else this.setPaused(false);
      return false;
    }
    if (this.requestStarted === 0) {
      this.requestStarted = Date.now();
      this.deadline = this.requestStarted + this.host.limits.headersTimeoutMs;
    }
    const r = parseHead(this.rb, this.rs, this.re, this.host.head);
    if (r.kind === 'incomplete') {
      if (this.peerEnded) this.socket.destroySoon();
      else this.setPaused(false);
      return false;
    }
    if (r.kind === 'error') {
      this.refuse(r.error);
      return false;
    }
    const head = r.head;
    this.rs += head.length;
    this.head = head;
    const hot = head.chunked ? undefined : this.host.hot(head);
    if (hot) this.startHot(hot, head);
    else this.startPass(head, r.head.length);
    return true;
  }

  private startHot(route: HotRoute, head: RequestHead): void {
    this.state = 'hot-wait';
    this.deadline = 0;
    const life = new Life();
    this.life = life;
    this.bodyLeft = head.contentLength ?? 0;
    let bodyAsked = false;
    const readBody = (max: number, alignAt: number): Promise<BodyLease> => {
      bodyAsked = true;
      const length = head.contentLength ?? 0;
      if (length > max) return Promise.reject(tooLarge(length, max));
      if (this.state !== 'hot-wait') return Promise.reject(new ClientGone('the connection closed'));
      if (head.expect === '100-continue' && head.minor === 1 && length > 0) this.socket.write(CONTINUE);
      const lease = lend(this.host.pool, life, length, (8 - (alignAt % 8)) % 8);
      this.body = { lease, at: 0, view: undefined };
      this.bodyLeft = 0;
      this.state = 'hot-body';
      this.deadline = this.requestStarted + this.host.limits.requestTimeoutMs;
      return new Promise<BodyLease>((resolve, reject) => {
        this.bodyWait = { resolve, reject };
        this.process();
      });
    };
    route({ head, life, readBody }).then(
      (answer) => this.hotAnswered(answer, bodyAsked),
      () => this.socket.destroy(),
    );
  }

  private bodyDone(): void {
    const w = this.bodyWait;
    this.bodyWait = undefined;
    this.state = 'hot-run';
    this.deadline = 0;
    w?.resolve(this.body!.lease);
  }

  private failBody(err: Error): void {
    const w = this.bodyWait!;
    this.bodyWait = undefined;
    this.body?.lease.release();
    this.state = 'hot-run';
    // The rest of the body is unread: after the answer, nothing on this connection can be parsed.
    this.endAfter = true;
    w.reject(err);
  }

  private hotAnswered(answer: LaneAnswer | undefined, bodyAsked: boolean): void {
    const life = this.life!;
    if (this.state === 'closed' || !answer) {
      life.close();
      this.socket.destroy();
      return;
    }
    // A body the route never read: skip it to keep the connection, unless the client waits for
    // 100 Continue (it may never send it) or it is over the limit.
    const unread = !bodyAsked && this.bodyLeft > 0;
    if (
      unread &&
      (answer.close || this.head!.expect === '100-continue' || this.bodyLeft > this.host.limits.maxBodyBytes)
    )
      this.endAfter = true;
    const close = this.endAfter || answer.close === true || !this.head!.keepAlive || this.host.closing();
    if (close) this.endAfter = true;
    writeAnswer(this.socket, answer, { close, keepAliveMs: this.host.limits.keepAliveTimeoutMs }, () => life.close());
    this.body = undefined;
    if (this.endAfter) return void this.socket.destroySoon();
    if (unread) {
      this.state = 'discard';
      this.deadline = this.requestStarted + this.host.limits.requestTimeoutMs;
    } else this.requestDone();
    this.process();
  }

  /** The current request is answered: the next head may be parsed (the caller runs process()). */
  private requestDone(): void {
    this.state = 'head';
    this.head = undefined;
    this.life = undefined;
    this.body = undefined;
    this.framer = undefined;
    this.idle();
  }

  private idle(): void {
    this.requestStarted = 0;
    this.deadline = Date.now() + this.host.limits.keepAliveTimeoutMs;
  }

  /** Answers a refusal of the lane's own (parse error, timeout) and closes the connection. */
  private refuse(err: OutpostError): void {
    const underWay = this.state !== 'head';
    this.host.refused(err);
    this.state = 'closed';
    this.deadline = 0;
    this.endAfter = true;
    this.rs = this.re;
    if (underWay) return void this.socket.destroy(); // an answer is under way: cut instead
    const body = Buffer.from(JSON.stringify(errorBody(err)));
    writeAnswer(
      this.socket,
      { status: err.status, headers: { 'Content-Type': 'application/json' }, parts: [body], byteLength: body.length },
      { close: true, keepAliveMs: 0 },
      () => {},
    );
    this.socket.destroySoon();
  }

  // --- handing requests to node:http ----------------------------------------------------------

  private startPass(head: RequestHead, headBytes: number): void {
    const h = this.handoff ?? this.openHandoff();
    this.state = 'pass-body';
    this.deadline = 0;
    this.passAnswered = false;
    this.bodyLeft = head.contentLength ?? 0;
    this.framer = head.chunked ? new ChunkedFramer(this.host.limits.maxBodyBytes, this.host.head) : undefined;
    this.passBlocked = !h.push(Buffer.from(this.rb.subarray(this.rs - headBytes, this.rs)));
  }

  private openHandoff(): Handoff {
    const h = new Handoff({
      response: (res) => this.passResponse(res),
      write: (chunks, done) => {
        if (this.socket.destroyed) return done();
        this.socket.cork();
        for (let i = 0; i < chunks.length - 1; i++) this.socket.write(chunks[i]!);
        this.socket.write(chunks[chunks.length - 1]!, () => done());
        this.socket.uncork();
      },
      ended: () => {
        this.endAfter = true;
        this.socket.destroySoon();
      },
      drained: () => {
        if (!this.passBlocked) return;
        this.passBlocked = false;
        this.process();
      },
    });
    h.on('close', () => this.socket.destroySoon());
    h.on('error', () => this.socket.destroy());
    this.handoff = h;
    this.host.http.emit('connection', h);
    return h;
  }

  /** node:http made the answer of the request being handed over. */
  private passResponse(res: ServerResponse): void {
    if (this.state !== 'pass-body' && this.state !== 'pass-wait') return void this.socket.destroy();
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      this.passAnswered = true;
      if (this.state !== 'pass-wait') return;
      this.requestDone();
      this.process();
    };
    res.once('finish', finished);
    res.once('close', finished);
  }

  /** Forwards body bytes from rb to node:http; false when the lane must wait. */
  private forwardBody(): boolean {
    if (this.passBlocked) {
      this.setPaused(true);
      return false;
    }
    let n: number;
    let done: boolean;
    const used = this.framer?.feed(this.rb, this.rs, this.re);
    if (used instanceof OutpostError) {
      // node:http has the head and reads the same bytes: it answers them (400 or 413) and closes.
      // Forward the rest as it comes and never parse on this connection again.
      this.framer = undefined;
      this.bodyLeft = Number.POSITIVE_INFINITY;
      this.endAfter = true;
    }
    if (typeof used === 'number') {
      n = used;
      done = this.framer!.done;
    } else {
      n = Math.min(this.bodyLeft, this.re - this.rs);
      this.bodyLeft -= n;
      done = this.bodyLeft === 0;
    }
    if (n > 0) {
      this.passBlocked = !this.handoff!.push(Buffer.from(this.rb.subarray(this.rs, this.rs + n)));
      this.rs += n;
    }
    if (!done) {
      this.setPaused(this.passBlocked);
      return false;
    }
    if (this.passAnswered) {
      this.requestDone();
      return true;
    }
    this.state = 'pass-wait';
    return true;
  }

  /**
   * hot-wait, hot-run, pass-wait: the current request is not done, so nothing more is parsed.
   * A client that waits for its answer sends nothing meanwhile, so the socket stays reading:
   * pausing and resuming it around every request cost two epoll_ctl calls and a stream resume
   * per request (docs/performance.md, round 6). Bytes that do arrive (a pipelining client, or
   * the end of the connection) stay in rb, and the socket pauses until the answer is out.
   */
  private waitForAnswer(): void {
    this.setPaused(this.rs !== this.re);
  }

  private setPaused(paused: boolean): void {
    if (paused === this.paused || this.socket.destroyed) return;
    this.paused = paused;
    if (paused) this.socket.pause();
    else this.socket.resume();
  }
}

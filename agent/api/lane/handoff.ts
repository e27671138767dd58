import type { ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';

/**
 * The in-memory connection that carries the lane's non-hot requests to node:http
 * (`server.emit('connection', handoff)`, which node:http accepts for any Duplex). One per lane
 * connection, made when its first such request arrives and kept for the connection's life, so
 * node:http's parser and keep-alive state stay those of one connection.
 *
 * In: the exact bytes of each handed request (head and body, chunked framing included), pushed
 * by the lane one request at a time. Out: node:http's answer bytes, written straight to the real
 * socket; a write completes only when the real socket has taken it, so node:http sees the real
 * socket's backpressure (an SSE client that stops reading is still detected by its buffered
 * bytes, agent/api/events.ts).
 */
export interface HandoffSink {
  /** node:http made the answer of the request being handed over. */
  response(res: ServerResponse): void;
  /** node:http's answer bytes, in order; `done` once the real socket has flushed them. */
  write(chunks: readonly Buffer[], done: (err?: Error | null) => void): void;
  /** node:http ended the connection (Connection: close, a parser error, a timeout). */
  ended(): void;
  /** node:http read what was pushed: the lane may push more. */
  drained(): void;
}

export class Handoff extends Duplex {
  constructor(readonly sink: HandoffSink) {
    super({ allowHalfOpen: true, decodeStrings: true });
  }

  override _read(): void {
    this.sink.drained();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.sink.write([chunk], done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    this.sink.write(
      chunks.map((c) => c.chunk),
      done,
    );
  }

  override _final(done: (err?: Error | null) => void): void {
    this.sink.ended();
    done();
  }

  // node:http calls these on its sockets; the lane owns the real socket's timeouts and options.
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

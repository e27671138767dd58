import { createRequire } from 'node:module';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { OutpostError } from '../../protocol/errors/index.js';
import { describeDbUrl } from './pg-url.js';
import { PG_WORKER_SOURCE } from './pg-worker-source.js';

export interface BridgeReply {
  id: number;
  ok: boolean;
  rows?: Record<string, unknown>[];
  changes?: number;
  error?: { code?: string; message: string; dead?: boolean; sent?: boolean };
}

export interface BridgeOptions {
  /** PostgreSQL's statement_timeout and lock_timeout, and the connect timeout. */
  timeoutMs: number;
  /**
   * How much longer the main thread waits for an answer than PostgreSQL's own timeout, so that
   * the server's cancel (a clean error on a live connection) normally comes first and this one
   * fires only when the connection itself hangs.
   */
  marginMs: number;
}

/** CLOUD_DB_UNAVAILABLE naming host:port/database (never the password) and what to check. */
export function dbUnavailable(url: string, why: string): OutpostError {
  return new OutpostError(
    'CLOUD_DB_UNAVAILABLE',
    `PostgreSQL at ${describeDbUrl(url)}: ${why}; check that the server runs and accepts this --database URL's user and password`,
    { database: describeDbUrl(url) },
  );
}

const pgPath = createRequire(import.meta.url).resolve('pg');

/**
 * One node-postgres connection in a worker thread, driven synchronously: `request` posts a
 * message and blocks this thread with Atomics.wait until the worker's answer is on the port
 * (cloud-broker/db/pg-worker-source.ts has the protocol). The event loop of the caller stops
 * meanwhile, as it does for a SQLite fsync: that is the cost, docs/scale.md says what it bounds.
 */
export class PgBridge {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly wake = new Int32Array(new SharedArrayBuffer(4));
  private nextId = 1;
  /** Resolves once the worker thread has exited (tests check that close leaks no thread). */
  readonly exited: Promise<void>;

  constructor(
    private readonly url: string,
    private readonly opts: BridgeOptions,
  ) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(PG_WORKER_SOURCE, {
      eval: true,
      workerData: {
        pgPath,
        url,
        port: port2,
        wake: this.wake.buffer,
        statementTimeoutMs: opts.timeoutMs,
        connectTimeoutMs: opts.timeoutMs,
      },
      transferList: [port2],
    });
    // The bridge never keeps a process alive on its own; close() ends it.
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    const ready = this.await(0, 'connect');
    if (!ready.ok) {
      void this.worker.terminate();
      throw dbUnavailable(this.url, `cannot connect (${ready.error?.message ?? 'no answer'})`);
    }
  }

  request(op: 'rows' | 'run', sql: string, params?: unknown[]): BridgeReply {
    const id = this.nextId++;
    this.port.postMessage({ id, op, sql, params });
    return this.await(id, sql);
  }

  /** Ends the connection and the thread; answers even when the worker hangs. */
  close(): void {
    const id = this.nextId++;
    this.port.postMessage({ id, op: 'close' });
    try {
      this.await(id, 'close');
    } catch {
      // A hung connection: terminate below drops it; the server rolls back what it held.
    }
    this.port.close();
    void this.worker.terminate();
  }

  /** Drops a hung connection without waiting for it. */
  kill(): void {
    this.port.close();
    void this.worker.terminate();
  }

  private await(id: number, what: string): BridgeReply {
    const deadline = Date.now() + this.opts.timeoutMs + this.opts.marginMs;
    for (;;) {
      // Read the counter before looking at the port: an answer posted after the look bumps it,
      // so the wait below returns at once instead of missing the wake-up.
      const seen = Atomics.load(this.wake, 0);
      const m = receiveMessageOnPort(this.port)?.message as BridgeReply | undefined;
      if (m) {
        if (m.id === id) return m;
        continue; // a late answer to a request that already timed out
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw Object.assign(
          dbUnavailable(
            this.url,
            `no answer within ${this.opts.timeoutMs + this.opts.marginMs} ms to ${what.slice(0, 80)}`,
          ),
          { hung: true },
        );
      }
      Atomics.wait(this.wake, 0, seen, left);
    }
  }
}

import { OutpostError } from '../../protocol/errors/index.js';
import { fromPgError } from './errors.js';
import { type BridgeReply, dbUnavailable, PgBridge } from './pg-bridge.js';
import { numberPlaceholders } from './pg-sql.js';
import type { Db, DbStats, Statement, Transaction } from './types.js';

export interface PgOptions {
  /** Connect, statement and lock-wait timeout; past it a call throws CLOUD_DB_UNAVAILABLE. */
  timeoutMs?: number;
}

export const PG_DEFAULT_TIMEOUT_MS = 10_000;
const MARGIN_MS = 2_000;

/**
 * The key of the advisory lock every transaction takes first (pg_advisory_xact_lock): the
 * stores' transactions read then write ("the next version number", "the next revision"), which
 * SQLite makes safe by having one writer at a time. Taking one lock shared by every replica
 * keeps exactly that rule on PostgreSQL, so a store needs no engine-specific locking; it also
 * makes migrations run once when two replicas start together. Reads outside a transaction do
 * not wait for it. The cost (one writer at a time for the whole cluster) is in docs/scale.md.
 */
export const WRITE_LOCK_KEY = 0x6f75_7470; // "outp"

/** SQLSTATEs that say "the server did not do it in time / is going away", not "your SQL is wrong". */
const UNAVAILABLE_STATES = new Set(['57014', '55P03', '57P01', '57P02', '57P03', '53300']);

/** PostgreSQL through the synchronous bridge (pg-bridge.ts), with better-sqlite3's semantics. */
export class PgDb implements Db {
  readonly engine = 'postgres' as const;
  private bridge: PgBridge | null;
  private closed = false;
  private queries = 0;
  private waitMs = 0;
  private depth = 0;
  /** Bumped when a connection is replaced: a transaction begun on the old one cannot go on. */
  private generation = 0;
  private txGeneration = -1;
  private readonly timeoutMs: number;
  /** Every bridge thread started; tests wait on these to prove close() leaks none. */
  readonly threads: Promise<void>[] = [];

  constructor(
    private readonly url: string,
    opts: PgOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? PG_DEFAULT_TIMEOUT_MS;
    this.bridge = this.connect();
  }

  get open(): boolean {
    return !this.closed;
  }

  prepare(sql: string): Statement {
    const text = numberPlaceholders(sql);
    return {
      run: (...params) => ({ changes: this.query('run', text, params).changes ?? 0 }),
      get: (...params) => this.query('rows', text, params).rows?.[0],
      all: (...params) => this.query('rows', text, params).rows ?? [],
    };
  }

  exec(sql: string): void {
    this.query('run', sql, undefined);
  }

  transaction<T>(fn: () => T): Transaction<T> {
    const run = (): T => (this.depth === 0 ? this.topLevel(fn) : this.savepoint(fn));
    return Object.assign(run, { immediate: run });
  }

  schemaVersion(): number {
    // Created here, inside the migrator's locked transaction, so concurrent starters never race on it.
    this.exec(
      'CREATE TABLE IF NOT EXISTS outpost_schema (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL)',
    );
    this.exec('INSERT INTO outpost_schema (one, version) VALUES (1, 0) ON CONFLICT DO NOTHING');
    return (this.prepare('SELECT version FROM outpost_schema').get() as { version: number }).version;
  }

  setSchemaVersion(v: number): void {
    this.prepare('UPDATE outpost_schema SET version = ?').run(v);
  }

  stats(): DbStats {
    return { queries: this.queries, waitMs: this.waitMs };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bridge?.close();
    this.bridge = null;
  }

  private connect(): PgBridge {
    const b = new PgBridge(this.url, { timeoutMs: this.timeoutMs, marginMs: MARGIN_MS });
    this.threads.push(b.exited);
    this.generation++;
    return b;
  }

  private topLevel<T>(fn: () => T): T {
    this.query('run', 'BEGIN', undefined);
    this.txGeneration = this.generation;
    this.depth = 1;
    try {
      this.query('run', `SELECT pg_advisory_xact_lock(${WRITE_LOCK_KEY})`, undefined);
      const out = fn();
      this.query('run', 'COMMIT', undefined);
      return out;
    } catch (err) {
      if (this.generation === this.txGeneration && this.bridge) {
        try {
          this.query('run', 'ROLLBACK', undefined);
        } catch {
          // The connection is gone: the server rolled back with it.
        }
      }
      throw err;
    } finally {
      this.depth = 0;
    }
  }

  private savepoint<T>(fn: () => T): T {
    const name = `outpost_sp${this.depth}`;
    this.query('run', `SAVEPOINT ${name}`, undefined);
    this.depth++;
    try {
      const out = fn();
      this.query('run', `RELEASE SAVEPOINT ${name}`, undefined);
      return out;
    } catch (err) {
      // On a lost connection there is no savepoint left to go back to; the caller's error stands.
      if (this.bridge && this.generation === this.txGeneration) {
        this.query('run', `ROLLBACK TO SAVEPOINT ${name}`, undefined);
        this.query('run', `RELEASE SAVEPOINT ${name}`, undefined);
      }
      throw err;
    } finally {
      this.depth--;
    }
  }

  private query(op: 'rows' | 'run', sql: string, params: unknown[] | undefined, retried = false): BridgeReply {
    if (this.closed) throw new TypeError('The database connection is not open');
    // Never reconnect in the middle of a transaction: its earlier statements died with the old
    // connection, so going on would commit half of it.
    if (this.depth > 0 && (this.bridge === null || this.generation !== this.txGeneration))
      throw this.unavailable('the connection was lost during this transaction');
    this.queries++;
    const args = params?.map((p) => (p === undefined ? null : typeof p === 'bigint' ? p.toString() : p));
    let r: BridgeReply;
    const t0 = performance.now();
    try {
      r = this.ensureBridge().request(op, sql, args);
    } catch (err) {
      // No answer at all: the connection hangs. Drop it; the next call connects again.
      if ((err as { hung?: boolean }).hung) this.dropBridge();
      throw err;
    } finally {
      this.waitMs += performance.now() - t0;
    }
    if (r.ok) return r;
    const e = r.error!;
    if (e.dead) {
      this.dropBridge();
      // Never sent (the connection had broken before): safe to send again on a new one, unless
      // a transaction was open on the old one.
      if (!e.sent && this.depth === 0 && !retried) return this.query(op, sql, params, true);
      throw this.unavailable(`the connection broke (${e.message})`);
    }
    if (e.code && UNAVAILABLE_STATES.has(e.code)) throw this.unavailable(e.message);
    if (e.code === 'OUTPOST_UNSAFE_NUMBER') throw new OutpostError('INTERNAL', e.message);
    throw fromPgError(e);
  }

  private ensureBridge(): PgBridge {
    if (!this.bridge) this.bridge = this.connect();
    return this.bridge;
  }

  private dropBridge(): void {
    this.bridge?.kill();
    this.bridge = null;
  }

  private unavailable(why: string): OutpostError {
    return dbUnavailable(this.url, why);
  }
}
